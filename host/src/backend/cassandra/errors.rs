//! Which Cassandra errors are the request's own fault (refused, and refused again if
//! retried) and which are an outage (retried).

use scylla::errors::{DbError, ExecutionError, RequestAttemptError};

use crate::backend::BackendError;

pub(super) const BACKEND: &str = "cassandra";

pub(super) fn unavailable(err: impl std::fmt::Display) -> BackendError {
    BackendError::unavailable(BACKEND, err)
}

/// A failed request as the worker must treat it: a refusal that the same request would meet
/// again (too large, invalid, not serializable) is [`BackendError::Invalid`]; anything else
/// (a timeout, an unavailable or overloaded node, a broken connection) is an outage, retried.
pub(crate) fn refusal_or_outage(err: ExecutionError) -> BackendError {
    let refused = match &err {
        ExecutionError::BadQuery(_) => true,
        ExecutionError::LastAttemptError(attempt) => match attempt {
            RequestAttemptError::DbError(db_error, _) => matches!(
                db_error,
                // "Request is too big: length … exceeds maximum allowed length …" is a
                // protocol error of that one request.
                DbError::SyntaxError
                    | DbError::Invalid
                    | DbError::ProtocolError
                    | DbError::FunctionFailure { .. }
            ),
            RequestAttemptError::SerializationError(_)
            | RequestAttemptError::CqlRequestSerialization(_) => true,
            _ => false,
        },
        _ => false,
    };
    if refused {
        BackendError::Invalid(format!("{BACKEND} refused the request: {err}"))
    } else {
        unavailable(err)
    }
}
