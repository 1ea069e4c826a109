//! A unit's status and the moves between statuses tsuru allows (`provision.Status`,
//! `ParseStatus`, and the flow drawn beside them in tsuru's `provision/provision.go`):
//!
//! ```text
//! created ──deploy──► building ──► starting ──► started ──sleep──► asleep
//!    └──────start unit──────────────┘  │  ▲        │ │ ▲             │
//!                                      ▼  │        │ ▼ │ (restart)   │ (wake)
//!                                     error ◄──────┘ stopped         ▼
//!                                                                starting
//! ```
//!
//! `created` may go to `building` (a deploy builds it) or straight to `starting`; `building`
//! to `starting`; `starting` to `started`; `started` to `stopped` (stop), `asleep` (sleep) or
//! `starting` (restart); `stopped` and `asleep` back to `starting`. Any status but `created`
//! may go to `error` (the unit failed), and `error` to `starting` (restarted) or `started`
//! (its check passed again, as tsuru's `SetUnitStatus` reports). Setting the status a unit
//! already has is allowed and changes nothing: node agents report the same status again and
//! again.

use serde::{Deserialize, Serialize};

use crate::AppError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitStatus {
    /// The unit's record exists; nothing runs yet.
    Created,
    /// Its image is being built (a deploy).
    Building,
    /// Its container was started; the process is not known to be up yet.
    Starting,
    /// Up and running (its health check passed).
    Started,
    /// It failed to start or crashed.
    Error,
    /// Stopped by `app stop`.
    Stopped,
    /// Put to sleep by `app sleep`.
    Asleep,
}

impl UnitStatus {
    pub const ALL: [UnitStatus; 7] = [
        UnitStatus::Created,
        UnitStatus::Building,
        UnitStatus::Starting,
        UnitStatus::Started,
        UnitStatus::Error,
        UnitStatus::Stopped,
        UnitStatus::Asleep,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UnitStatus::Created => "created",
            UnitStatus::Building => "building",
            UnitStatus::Starting => "starting",
            UnitStatus::Started => "started",
            UnitStatus::Error => "error",
            UnitStatus::Stopped => "stopped",
            UnitStatus::Asleep => "asleep",
        }
    }

    /// tsuru's `ParseStatus`: one of the seven names, exactly.
    pub fn parse(text: &str) -> Result<UnitStatus, AppError> {
        UnitStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = UnitStatus::ALL.iter().map(|s| s.as_str()).collect();
                AppError::Invalid(format!(
                    "`{text}` is not a unit status; the statuses are: {}",
                    names.join(", ")
                ))
            })
    }

    /// Whether tsuru's flow allows a unit in `self` to go to `to`.
    pub fn can_become(self, to: UnitStatus) -> bool {
        use UnitStatus::*;
        if self == to {
            return true;
        }
        match (self, to) {
            (Created, _) => matches!(to, Building | Starting),
            (_, Error) => true,
            (Building, Starting) => true,
            (Starting, Started) => true,
            (Started, Stopped | Asleep | Starting) => true,
            (Stopped | Asleep, Starting) => true,
            (Error, Starting | Started) => true,
            _ => false,
        }
    }

    /// `can_become` as a check: the error names both statuses.
    pub fn check_transition(self, to: UnitStatus) -> Result<(), AppError> {
        if self.can_become(to) {
            Ok(())
        } else {
            Err(AppError::ForbiddenTransition { from: self, to })
        }
    }
}

impl std::fmt::Display for UnitStatus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn parse_reads_every_name_and_refuses_others() {
        for status in UnitStatus::ALL {
            assert_eq!(UnitStatus::parse(status.as_str()).unwrap(), status);
        }
        let error = UnitStatus::parse("Started").unwrap_err();
        expect![[r#"`Started` is not a unit status; the statuses are: created, building, starting, started, error, stopped, asleep"#]]
            .assert_eq(&error.to_string());
        assert!(UnitStatus::parse("").is_err());
    }

    /// The whole table, so that a change to the machine shows as a diff to review.
    #[test]
    fn the_allowed_moves_are_tsurus() {
        let mut table = String::new();
        for from in UnitStatus::ALL {
            let to: Vec<&str> = UnitStatus::ALL
                .into_iter()
                .filter(|&to| to != from && from.can_become(to))
                .map(UnitStatus::as_str)
                .collect();
            table.push_str(&format!("{from} -> {}\n", to.join(" ")));
        }
        expect![[r#"
            created -> building starting
            building -> starting error
            starting -> started error
            started -> starting error stopped asleep
            error -> starting started
            stopped -> starting error
            asleep -> starting error
        "#]]
        .assert_eq(&table);
    }

    #[test]
    fn a_forbidden_move_is_an_error_naming_both_statuses() {
        let error = UnitStatus::Stopped
            .check_transition(UnitStatus::Started)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "a unit cannot go from `stopped` to `started`"
        );
        assert!(
            UnitStatus::Asleep
                .check_transition(UnitStatus::Asleep)
                .is_ok()
        );
        assert!(
            UnitStatus::Created
                .check_transition(UnitStatus::Error)
                .is_err()
        );
    }
}
