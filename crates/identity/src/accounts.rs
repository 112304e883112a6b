//! What can be done to accounts, by the HTTP API and by the command line alike: register a
//! customer, add staff, make the first manager, sign in. Each checks its values, hashes off
//! the runtime threads, and lets the table's `UNIQUE` settle who got a name first.

use contracts::PhoneNumber;
use platform::auth::Role;
use platform::Db;

use crate::domain::{sign_in_name, staff_role, Account, Password, Username};
use crate::error::Error;
use crate::throttle::Throttle;
use crate::{password, store};

/// The first manager's user name.
pub const MANAGER: &str = "manager";

/// A customer registers: their phone number is their user name.
pub async fn register_customer(db: &Db, phone: &PhoneNumber, password: Password) -> Result<Account, Error> {
    let username = Username::customer(phone);
    let hash = password::hash(password).await?;
    store::insert(db, &username, &hash, Role::Customer, Some(phone.as_str()))
        .await?
        .ok_or_else(|| Error::Taken(username.as_str().to_string()))
}

/// A staff account (barista, rider or manager), already validated.
pub async fn add_staff(db: &Db, username: &Username, password: Password, role: Role) -> Result<Account, Error> {
    let role = staff_role(role).map_err(|rule| Error::Invalid { field: "role", rule })?;
    let hash = password::hash(password).await?;
    store::insert(db, username, &hash, role, None).await?.ok_or_else(|| Error::Taken(username.as_str().to_string()))
}

/// Adds a staff account (for `cafe user add`): any role but customer or service;
/// [`Error::Taken`] if the user name is.
pub async fn add_user(db: &Db, username: &str, password: &str, role: Role) -> Result<(), Error> {
    let username = Username::staff(username).map_err(|rule| Error::Invalid { field: "username", rule })?;
    staff_role(role).map_err(|rule| Error::Invalid { field: "role", rule })?;
    let password = Password::new(password).map_err(|rule| Error::Invalid { field: "password", rule })?;
    add_staff(db, &username, password, role).await.map(|_| ())
}

/// Creates the account `manager` (role manager) with `password` if no manager account
/// exists yet; true if it created it.
pub async fn ensure_manager(db: &Db, password: &str) -> Result<bool, Error> {
    let password = Password::new(password).map_err(|rule| Error::Invalid { field: "password", rule })?;
    if store::has_manager(db).await? {
        return Ok(false);
    }
    let username = Username::staff(MANAGER).map_err(|rule| Error::Invalid { field: "username", rule })?;
    match add_staff(db, &username, password, Role::Manager).await {
        Ok(_) => Ok(true),
        // Another replica starting at the same moment made it first; or the name is held
        // by an account of another role, which leaves the cafe without a manager: say so.
        Err(Error::Taken(name)) => {
            if store::has_manager(db).await? {
                Ok(false)
            } else {
                Err(Error::Taken(name))
            }
        }
        Err(e) => Err(e),
    }
}

/// Checks a sign-in: the account if `password` is its password. An unknown name and a
/// wrong password fail alike, and both count towards the name's throttle.
pub async fn sign_in(db: &Db, throttle: &Throttle, typed_name: &str, password: String) -> Result<Account, Error> {
    let name = sign_in_name(typed_name);
    throttle.attempt(&name).map_err(|wait| {
        tracing::warn!(retry_after = wait, "sign-ins for one user name are being throttled");
        Error::Throttled(wait)
    })?;
    let (account, hash) = match store::credentials(db, &name).await? {
        Some((account, hash)) => (Some(account), Some(hash)),
        None => (None, None),
    };
    match (password::verify(password, hash).await?, account) {
        (true, Some(account)) => {
            throttle.succeeded(&name);
            Ok(account)
        }
        _ => Err(Error::BadCredentials),
    }
}
