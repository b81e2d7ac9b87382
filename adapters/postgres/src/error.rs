//! Translating `sqlx::Error` into the ports' [`StoreError`]: driver errors never cross a port.

use herald_application::ports::StoreError;

/// SQLSTATE classes and codes that mean "the server is not there or not answering now", so the
/// operation may succeed later: connection exceptions (class 08), insufficient resources (class
/// 53, e.g. too many connections), and the server shutting down or starting (57P01–57P03).
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// The constraint (or unique index) a unique violation names; `None` for any other error.
pub(crate) fn unique_violation(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            Some(db.constraint().unwrap_or(""))
        }
        _ => None,
    }
}

/// The generic translation: unreachable server or exhausted pool → `Unavailable`; a unique
/// violation nobody translated more precisely → `Conflict` naming the constraint; the rest →
/// `Other`. Methods that know which constraints they may hit match [`unique_violation`] first.
pub(crate) fn store_error(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
        sqlx::Error::Database(db) if db.code().is_some_and(|code| is_unavailable_code(&code)) => {
            StoreError::Unavailable(err.to_string())
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(format!(
            "{}: {}",
            db.constraint().unwrap_or("unique"),
            db.message()
        )),
        _ => StoreError::Other(err.to_string()),
    }
}
