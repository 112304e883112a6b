//! The menu: what the cafe sells and what each costs, in won. With auth on, an order's price
//! comes from here, never from the client (SPEC §9); the client may still send `amt`, and an
//! `amt` that differs from price × qty is refused rather than silently corrected, so a client
//! showing a stale price finds out.
//!
//! Names are matched without regard to case or surrounding spaces ("Latte" is "latte"), and
//! an order stores the menu's spelling, so every view shows one name per product. Pure: the
//! menu is read from a file at startup by whoever wires the service.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The highest price a product may have: a hundred of it (an order's largest qty) must stay
/// within the 10,000,000 won a payment accepts.
pub const MAX_PRICE: i64 = 100_000;

/// One product and its price, in won.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MenuItem {
    pub product_name: String,
    pub price: i64,
}

/// The products on sale, in the order the menu lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    items: Vec<MenuItem>,
}

/// What an order costs, as the menu says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    /// The product's name as the menu spells it.
    pub product_name: String,
    pub amt: i64,
}

impl Default for Menu {
    /// The menu a cafe ships with; it includes every product the demonstrations and load
    /// tests order, so they run unchanged against it.
    fn default() -> Menu {
        let items = [
            ("espresso", 3500),
            ("americano", 4000),
            ("coffee", 3500),
            ("latte", 4500),
            ("cappuccino", 4500),
            ("mocha", 5000),
            ("tea", 3500),
        ];
        Menu { items: items.into_iter().map(|(name, price)| MenuItem { product_name: name.into(), price }).collect() }
    }
}

impl Menu {
    /// Reads `[{"productName": "latte", "price": 4500}, ...]`. Refuses an empty menu, empty
    /// or repeated names (ignoring case), and prices below 0 or above [`MAX_PRICE`].
    pub fn from_json(text: &str) -> Result<Menu, String> {
        let items: Vec<MenuItem> = serde_json::from_str(text).map_err(|e| format!("not a menu: {e}"))?;
        Menu::new(items)
    }

    pub fn new(items: Vec<MenuItem>) -> Result<Menu, String> {
        if items.is_empty() {
            return Err("the menu lists no product".into());
        }
        let mut items = items;
        for (i, item) in items.iter_mut().enumerate() {
            item.product_name = item.product_name.trim().to_string();
            let name = &item.product_name;
            let n = name.chars().count();
            if n == 0 || n > 100 {
                return Err(format!("item {}: productName must be 1 to 100 characters", i + 1));
            }
            if !(0..=MAX_PRICE).contains(&item.price) {
                return Err(format!("{name:?}: price must be between 0 and {MAX_PRICE} won"));
            }
        }
        for (i, item) in items.iter().enumerate() {
            if items[..i].iter().any(|earlier| key(&earlier.product_name) == key(&item.product_name)) {
                return Err(format!("{:?} is on the menu twice", item.product_name));
            }
        }
        Ok(Menu { items })
    }

    pub fn items(&self) -> &[MenuItem] {
        &self.items
    }

    /// The product called `product_name`, whatever its case.
    pub fn find(&self, product_name: &str) -> Option<&MenuItem> {
        let wanted = key(product_name);
        self.items.iter().find(|item| key(&item.product_name) == wanted)
    }

    /// What `qty` of `product_name` costs; `sent` is the `amt` the client sent, if any,
    /// which must be that price.
    pub fn price(&self, product_name: &str, qty: i64, sent: Option<i64>) -> Result<Priced, Error> {
        let item = self.find(product_name).ok_or_else(|| Error::NotOnMenu(product_name.trim().to_string()))?;
        let amt = item.price * qty;
        match sent {
            Some(sent) if sent != amt => Err(Error::AmountDiffers { sent, price: item.price, qty }),
            _ => Ok(Priced { product_name: item.product_name.clone(), amt }),
        }
    }
}

fn key(name: &str) -> String {
    name.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_menu_sells_what_the_demonstrations_order() {
        let menu = Menu::default();
        for name in ["latte", "Latte", "americano", "Americano", "cappuccino", "coffee", "mocha", "tea"] {
            assert!(menu.find(name).is_some(), "{name}");
        }
        assert_eq!(menu.find("latte").map(|i| i.price), Some(4500));
        assert_eq!(Menu::new(menu.items().to_vec()), Ok(menu), "the default passes its own checks");
    }

    #[test]
    fn a_menu_reads_from_json() {
        let menu =
            Menu::from_json(r#"[{"productName": " Flat White ", "price": 5000}, {"productName": "tea", "price": 0}]"#)
                .unwrap();
        assert_eq!(
            menu.items(),
            [
                MenuItem { product_name: "Flat White".into(), price: 5000 },
                MenuItem { product_name: "tea".into(), price: 0 }
            ]
        );
    }

    #[test]
    fn a_bad_menu_is_refused_saying_why() {
        for (text, why) in [
            ("{}", "not a menu"),
            ("[]", "no product"),
            (r#"[{"productName": "tea", "prize": 1}]"#, "not a menu"),
            (r#"[{"productName": "tea", "price": 1.5}]"#, "not a menu"),
            (r#"[{"productName": "  ", "price": 1}]"#, "1 to 100 characters"),
            (r#"[{"productName": "tea", "price": -1}]"#, "between 0 and"),
            (r#"[{"productName": "tea", "price": 100001}]"#, "between 0 and"),
            (r#"[{"productName": "tea", "price": 1}, {"productName": "Tea ", "price": 2}]"#, "twice"),
        ] {
            let e = Menu::from_json(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn the_price_is_the_menus_times_qty_and_a_sent_amt_must_agree() {
        let menu = Menu::default();
        assert_eq!(menu.price("Latte", 2, None).unwrap(), Priced { product_name: "latte".into(), amt: 9000 });
        assert_eq!(menu.price("latte", 2, Some(9000)).unwrap().amt, 9000);
        assert!(matches!(menu.price("latte", 2, Some(1)), Err(Error::AmountDiffers { sent: 1, price: 4500, qty: 2 })));
        assert!(matches!(menu.price("caviar", 1, None), Err(Error::NotOnMenu(name)) if name == "caviar"));
    }
}
