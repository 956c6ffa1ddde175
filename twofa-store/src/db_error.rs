//! The database driver's errors, as the store's two kinds and as one line of text: shared by
//! the store (`pg`), the schema (`schema`) and the connection settings (`settings`), so that
//! none of them imports another for it.

use std::error::Error as _;

use postgres::error::SqlState;
use twofa_core::store::StoreError;

/// Whether `e` says a table does not exist.
pub(crate) fn is_undefined_table(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNDEFINED_TABLE)
}

/// Maps a driver error to the trait's two kinds.
pub(crate) fn store_error(e: postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let message = format!("{} (SQLSTATE {code})", db.message());
        // Connection exceptions, a server shutting down or starting up, too many
        // connections: the server can't take us now, nothing was done.
        let unreachable =
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300");
        return if unreachable {
            StoreError::Unavailable(message)
        } else {
            StoreError::Backend(message)
        };
    }
    let text = chain(&e);
    let lost = e.is_closed()
        || e.source().is_some_and(|s| s.is::<std::io::Error>())
        || text.starts_with("timeout");
    if lost {
        StoreError::Unavailable(text)
    } else {
        StoreError::Backend(text)
    }
}

/// An error and its causes on one line (the driver's own `Display` leaves the cause out).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        next = cause.source();
    }
    text.replace('\n', " ")
}
