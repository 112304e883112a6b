//! The merge rule of a view built from events (CQRS) that come in any order and may come
//! twice: a field is filled by the first event that knows it ([`fill`]), and a status only
//! moves to a higher-ranked stage ([`advance`]). For the same events both are commutative and
//! idempotent, so every arrival order gives the same row. The service supplies the row, its
//! stages and their ranks.

/// First known value wins: for the same data that is order independent.
pub fn fill<T: Clone>(slot: &mut Option<T>, value: &Option<T>) {
    if slot.is_none() {
        slot.clone_from(value);
    }
}

/// The furthest stage seen wins: `status` becomes `stage` only if `stage` ranks higher.
pub fn advance<S: Copy>(status: &mut S, stage: S, rank: impl Fn(S) -> i64) {
    if rank(stage) > rank(*status) {
        *status = stage;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_keeps_the_first_known_value() {
        let mut slot = None;
        fill(&mut slot, &None);
        assert_eq!(slot, None);
        fill(&mut slot, &Some(1));
        fill(&mut slot, &Some(2));
        fill(&mut slot, &None);
        assert_eq!(slot, Some(1));
    }

    #[test]
    fn advance_only_moves_up() {
        let rank = |s: u8| i64::from(s);
        let mut status = 2;
        advance(&mut status, 1, rank);
        assert_eq!(status, 2);
        advance(&mut status, 3, rank);
        advance(&mut status, 3, rank);
        assert_eq!(status, 3);
    }
}
