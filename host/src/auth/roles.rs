//! The role rules every pipeline route applies: owns what a customer, a service and an admin
//! may do with a pipeline's records. Pure decisions over a [`Caller`] and what the route
//! knows (the pipeline, the record's owner, the event kind); it reads nothing itself.
//!
//! | caller   | create            | read / history / list | post an event                       |
//! |----------|-------------------|-----------------------|-------------------------------------|
//! | anyone (`none`) | yes        | every record          | every kind                          |
//! | customer | owned by `sub`    | own records (else 404)| own records, `customer_events` kinds|
//! | service  | 403               | its pipelines' records| the kinds `[auth.services]` allows  |
//! | admin    | yes               | every record          | every kind                          |

use std::collections::BTreeMap;

use super::{AuthError, Caller};
use crate::config::AuthConfig;

/// Whether a caller may see one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sight {
    Visible,
    /// Answered like an unknown id (`404`), so its existence does not leak.
    Hidden,
}

/// What each service and each customer may post, per pipeline.
#[derive(Debug, Clone, Default)]
pub(crate) struct Permissions {
    services: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    customer_events: BTreeMap<String, Vec<String>>,
}

impl Permissions {
    pub(crate) fn from_config(config: &AuthConfig) -> Self {
        Self {
            services: config.services.clone(),
            customer_events: config.customer_events.clone(),
        }
    }

    /// Who a new record belongs to: the customer's subject (whatever the body says), else
    /// the body's own `customer` (`None` here). Services do not create records.
    pub(crate) fn owner_of_new_record(
        &self,
        caller: &Caller,
        pipeline: &str,
    ) -> Result<Option<String>, AuthError> {
        match caller {
            Caller::Anyone | Caller::Admin => Ok(None),
            Caller::Customer { subject } => Ok(Some(subject.clone())),
            Caller::Service { name } => Err(AuthError::Forbidden(format!(
                "service {name:?} may not create {pipeline} records"
            ))),
        }
    }

    /// Whether the caller may see a record owned by `owner` (its `customer` field).
    pub(crate) fn sight(
        &self,
        caller: &Caller,
        pipeline: &str,
        owner: Option<&str>,
    ) -> Result<Sight, AuthError> {
        match caller {
            Caller::Anyone | Caller::Admin => Ok(Sight::Visible),
            Caller::Customer { subject } => Ok(if owner == Some(subject.as_str()) {
                Sight::Visible
            } else {
                Sight::Hidden
            }),
            Caller::Service { name } => {
                if self.service_events(name, pipeline).is_some() {
                    Ok(Sight::Visible)
                } else {
                    Err(AuthError::Forbidden(format!(
                        "service {name:?} has no access to {pipeline} (auth.services.{name})"
                    )))
                }
            }
        }
    }

    /// Whether the caller may post an event of `kind` on a record it can see.
    pub(crate) fn may_post(
        &self,
        caller: &Caller,
        pipeline: &str,
        kind: &str,
    ) -> Result<(), AuthError> {
        let allowed = match caller {
            Caller::Anyone | Caller::Admin => return Ok(()),
            Caller::Customer { .. } => self.customer_events.get(pipeline),
            Caller::Service { name } => self.service_events(name, pipeline),
        };
        if allowed.is_some_and(|kinds| kinds.iter().any(|allowed| allowed == kind)) {
            return Ok(());
        }
        let who = match caller {
            Caller::Service { name } => format!("service {name:?}"),
            _ => "a customer".to_owned(),
        };
        Err(AuthError::Forbidden(format!(
            "{who} may not post {kind:?} events on {pipeline}"
        )))
    }

    fn service_events(&self, service: &str, pipeline: &str) -> Option<&Vec<String>> {
        self.services.get(service)?.get(pipeline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permissions() -> Permissions {
        let mut config = AuthConfig::default();
        config.services.insert(
            "payments".into(),
            BTreeMap::from([("orders".into(), vec!["payment_received".into()])]),
        );
        config.services.insert(
            "warehouse".into(),
            BTreeMap::from([("orders".into(), vec!["shipped".into()])]),
        );
        Permissions::from_config(&config)
    }

    fn alice() -> Caller {
        Caller::Customer {
            subject: "alice-sub".into(),
        }
    }

    fn service(name: &str) -> Caller {
        Caller::Service { name: name.into() }
    }

    #[test]
    fn a_customer_owns_what_they_create_and_sees_only_that() {
        let p = permissions();
        assert_eq!(
            p.owner_of_new_record(&alice(), "orders"),
            Ok(Some("alice-sub".into()))
        );
        assert_eq!(
            p.sight(&alice(), "orders", Some("alice-sub")),
            Ok(Sight::Visible)
        );
        assert_eq!(
            p.sight(&alice(), "orders", Some("bob-sub")),
            Ok(Sight::Hidden)
        );
        assert_eq!(p.sight(&alice(), "orders", None), Ok(Sight::Hidden));
    }

    #[test]
    fn a_customer_may_cancel_but_not_pay() {
        let p = permissions();
        assert_eq!(p.may_post(&alice(), "orders", "cancel_requested"), Ok(()));
        assert!(matches!(
            p.may_post(&alice(), "orders", "payment_received"),
            Err(AuthError::Forbidden(_))
        ));
        assert!(
            p.may_post(&alice(), "invoices", "cancel_requested")
                .is_err()
        );
    }

    #[test]
    fn a_service_posts_only_its_configured_kinds() {
        let p = permissions();
        assert_eq!(
            p.may_post(&service("payments"), "orders", "payment_received"),
            Ok(())
        );
        assert!(
            p.may_post(&service("payments"), "orders", "shipped")
                .is_err()
        );
        assert_eq!(
            p.may_post(&service("warehouse"), "orders", "shipped"),
            Ok(())
        );
        assert!(
            p.may_post(&service("unknown"), "orders", "shipped")
                .is_err()
        );
        assert!(
            p.owner_of_new_record(&service("payments"), "orders")
                .is_err()
        );
        assert_eq!(
            p.sight(&service("payments"), "orders", Some("x")),
            Ok(Sight::Visible)
        );
        assert!(
            p.sight(&service("payments"), "invoices", Some("x"))
                .is_err()
        );
    }

    #[test]
    fn anyone_and_admin_may_do_everything() {
        let p = permissions();
        for caller in [Caller::Anyone, Caller::Admin] {
            assert_eq!(p.owner_of_new_record(&caller, "orders"), Ok(None));
            assert_eq!(p.sight(&caller, "orders", Some("x")), Ok(Sight::Visible));
            assert_eq!(p.may_post(&caller, "orders", "payment_received"), Ok(()));
        }
    }
}
