//! Every event of the cafe (SPEC §5) as a typed struct, and their set, [`Payload`], a serde
//! enum tagged by `eventType`. With [`platform::Event`]'s envelope (`eventId`, `timestamp`,
//! `source`) flat beside it, its JSON is exactly the spec's; the golden fixtures in
//! `tests/fixtures/` pin it both ways.

use serde::{Deserialize, Serialize};

use crate::status::{DeliveryStatus, DrinkStatus, OrderStatus, PaymentStatus};

/// An event of the cafe, as it travels: the envelope and one of its payloads.
pub type Event = platform::Event<Payload>;

/// `Ordered`: an order was placed and paid. `id` is the order's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ordered {
    pub id: i64,
    pub phone_number: String,
    pub product_name: String,
    pub qty: i64,
    pub amt: i64,
    pub status: OrderStatus,
    pub create_time: String,
}

/// `OrderCanceled`: an order was cancelled (its cancellation recorded by delivery first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCanceled {
    pub id: i64,
    pub phone_number: String,
    pub product_name: String,
    pub qty: i64,
    pub amt: i64,
    pub status: OrderStatus,
}

/// `PaymentApproved` and `PaymentCanceled`: the payment as it now is. `id` is the payment's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentChanged {
    pub id: i64,
    pub order_id: i64,
    pub phone_number: String,
    pub amt: i64,
    pub status: PaymentStatus,
}

/// `OrderInfoReceived`: the order reached the baristas as a drink. `id` is the drink's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderInfoReceived {
    pub id: i64,
    pub order_id: i64,
    pub phone_number: String,
    pub product_name: String,
    pub qty: i64,
    pub status: DrinkStatus,
}

/// `Receipted`, `Made` and `DrinkCanceled`: the drink's new status. `id` is the drink's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrinkChanged {
    pub id: i64,
    pub order_id: i64,
    pub phone_number: String,
    pub status: DrinkStatus,
}

/// `DeliveryStarted`, `Delivered` (`id`: the delivery's) and `DeliveryCanceled` (`id`: the
/// cancellation ledger entry's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryChanged {
    pub id: i64,
    pub order_id: i64,
    pub status: DeliveryStatus,
}

macro_rules! payloads {
    ($($(#[$doc:meta])* $variant:ident($body:ty) => |$b:ident| $order_id:expr),+ $(,)?) => {
        /// What an event says, by `eventType`.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "eventType")]
        pub enum Payload {
            $($(#[$doc])* $variant($body)),+
        }

        /// The event types, for subscribing: a consumer names what it listens to.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum EventType {
            $($variant),+
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),+];

            pub fn as_str(self) -> &'static str {
                platform::spelling::name(&self)
            }
        }

        impl Payload {
            pub fn kind(&self) -> EventType {
                match self {
                    $(Payload::$variant(_) => EventType::$variant),+
                }
            }
        }

        impl platform::Payload for Payload {
            fn event_type(&self) -> &'static str {
                self.kind().as_str()
            }

            fn order_id(&self) -> i64 {
                match self {
                    $(Payload::$variant($b) => $order_id),+
                }
            }

            fn knows(event_type: &str) -> bool {
                platform::spelling::parse::<EventType>(event_type).is_some()
            }
        }
    };
}

payloads!(
    Ordered(Ordered) => |b| b.id,
    OrderCanceled(OrderCanceled) => |b| b.id,
    PaymentApproved(PaymentChanged) => |b| b.order_id,
    PaymentCanceled(PaymentChanged) => |b| b.order_id,
    OrderInfoReceived(OrderInfoReceived) => |b| b.order_id,
    Receipted(DrinkChanged) => |b| b.order_id,
    Made(DrinkChanged) => |b| b.order_id,
    DrinkCanceled(DrinkChanged) => |b| b.order_id,
    DeliveryStarted(DeliveryChanged) => |b| b.order_id,
    DeliveryCanceled(DeliveryChanged) => |b| b.order_id,
    Delivered(DeliveryChanged) => |b| b.order_id,
);

/// One payload of each type, in `EventType::ALL` order, all about order 8: the events the
/// golden fixtures hold, and a set for a consumer's tests to check what it subscribes to.
pub fn examples() -> Vec<Payload> {
    const PHONE: &str = "01012345678";
    let ordered = Ordered {
        id: 8,
        phone_number: PHONE.into(),
        product_name: "Americano".into(),
        qty: 2,
        amt: 9000,
        status: OrderStatus::Ordered,
        create_time: "2026-12-03T10:15:30.100Z".into(),
    };
    let canceled = OrderCanceled {
        id: 8,
        phone_number: PHONE.into(),
        product_name: "Americano".into(),
        qty: 2,
        amt: 9000,
        status: OrderStatus::OrderCanceled,
    };
    let payment = |status| PaymentChanged { id: 5, order_id: 8, phone_number: PHONE.into(), amt: 9000, status };
    let received = OrderInfoReceived {
        id: 3,
        order_id: 8,
        phone_number: PHONE.into(),
        product_name: "Americano".into(),
        qty: 2,
        status: DrinkStatus::Received,
    };
    let drink = |status| DrinkChanged { id: 3, order_id: 8, phone_number: PHONE.into(), status };
    let delivery = |id, status| DeliveryChanged { id, order_id: 8, status };
    vec![
        Payload::Ordered(ordered),
        Payload::OrderCanceled(canceled),
        Payload::PaymentApproved(payment(PaymentStatus::Approved)),
        Payload::PaymentCanceled(payment(PaymentStatus::Canceled)),
        Payload::OrderInfoReceived(received),
        Payload::Receipted(drink(DrinkStatus::Receipted)),
        Payload::Made(drink(DrinkStatus::Made)),
        Payload::DrinkCanceled(drink(DrinkStatus::Canceled)),
        Payload::DeliveryStarted(delivery(4, DeliveryStatus::DeliveryStarted)),
        Payload::DeliveryCanceled(delivery(6, DeliveryStatus::DeliveryCancelled)),
        Payload::Delivered(delivery(4, DeliveryStatus::Delivered)),
    ]
}

/// The names of `types`, as a bus subscribes to them.
pub fn names(types: &[EventType]) -> Vec<&'static str> {
    types.iter().map(|t| t.as_str()).collect()
}

/// For a view's tests: `V` reads a fact about order 8 from each of [`examples`] whose type
/// it `consumes`, and nothing from any other, so it subscribes to exactly the events it reads.
pub fn assert_view_reads_exactly<V: platform::view::View<Payload = Payload>>(consumes: &[EventType]) {
    use platform::view::Merge;
    let payloads = examples();
    let kinds: Vec<EventType> = payloads.iter().map(Payload::kind).collect();
    assert_eq!(kinds.len(), EventType::ALL.len());
    assert!(EventType::ALL.iter().all(|t| kinds.contains(t)));
    for p in &payloads {
        let key = V::fact(p).map(|fact| fact.key());
        assert_eq!(key, consumes.contains(&p.kind()).then_some(8), "{:?}", p.kind());
    }
}
