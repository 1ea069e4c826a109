//! Direct edits of a stack's state (`cairn state delete|unprotect|repair`), each split into a
//! read-only plan (what would change, for the front end to show and confirm) and its
//! application. Both happen under one hold of the stack's lock, taken by `StateEditor::open`:
//! nothing can change the state between the plan the user approved and what is written.

use std::collections::HashSet;

use cairn_core::{ResourceState, Snapshot, Urn};
use cairn_state::{JournalDamage, StackLock};

use crate::{OpsError, StackSession};

/// A stack opened for editing its state: the session and the stack's lock, held until the
/// editor is dropped.
pub struct StateEditor<'s> {
    session: &'s StackSession,
    lock: Box<dyn StackLock>,
}

/// What `delete` would do: remove one resource from the state, leaving it where it runs.
#[derive(Clone, Debug)]
pub struct DeletePlan {
    pub urn: Urn,
    /// The ID of the resource removed.
    pub id: String,
    /// The resources that depend on it (as child, dependent or managed resource), left in the
    /// state pointing at nothing; only ever non-empty when forced.
    pub dependents: Vec<Urn>,
    /// Whether it was protected; only ever true when forced.
    pub protected: bool,
    snapshot: Snapshot,
}

/// What `unprotect` would do.
#[derive(Clone, Debug)]
pub struct UnprotectPlan {
    pub urn: Urn,
    /// False when the resource is not protected: there is nothing to apply.
    pub was_protected: bool,
    snapshot: Snapshot,
}

/// One change `repair` makes to the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairChange {
    /// Dependencies of `urn` on resources that are not in the state.
    DropDependencies {
        urn: Urn,
        count: usize,
    },
    /// Dependencies of one property of `urn` on resources that are not in the state.
    DropPropertyDependencies {
        urn: Urn,
        property: String,
    },
    ClearParent {
        urn: Urn,
        parent: Urn,
    },
    ClearProvider {
        urn: Urn,
        provider: String,
    },
    /// The resources were not in dependency order.
    Reorder,
}

impl std::fmt::Display for RepairChange {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RepairChange::DropDependencies { urn, count } => write!(
                formatter,
                "drop {count} dependencies of `{urn}` on resources that do not exist"
            ),
            RepairChange::DropPropertyDependencies { urn, property } => write!(
                formatter,
                "drop dependencies of `{urn}`'s `{property}` on resources that do not exist"
            ),
            RepairChange::ClearParent { urn, parent } => write!(
                formatter,
                "clear the parent of `{urn}` (`{parent}` does not exist)"
            ),
            RepairChange::ClearProvider { urn, provider } => write!(
                formatter,
                "clear the provider of `{urn}` (`{provider}` does not exist)"
            ),
            RepairChange::Reorder => write!(formatter, "put resources in dependency order"),
        }
    }
}

/// What `repair` would do. A damaged journal hides the state behind it (it cannot be read
/// until salvaged), so a plan with `salvage` holds nothing else: plan again once it is applied.
#[derive(Clone, Debug, Default)]
pub struct RepairPlan {
    /// The damage of an interrupted update's journal, and what salvaging it keeps.
    pub salvage: Option<JournalDamage>,
    /// The changes to the checkpoint's resources.
    pub changes: Vec<RepairChange>,
    repaired: Option<Snapshot>,
}

impl RepairPlan {
    /// Whether the state needs no repair.
    pub fn is_empty(&self) -> bool {
        self.salvage.is_none() && self.changes.is_empty()
    }
}

/// What `repair` did, over all the plans applied.
#[derive(Clone, Debug, Default)]
pub struct RepairOutcome {
    /// The journal salvaged: what was kept, what is pending, where the journal went, and the
    /// resources its damaged part names.
    pub salvaged: Option<JournalDamage>,
    /// The changes made to the resources.
    pub repaired: Vec<RepairChange>,
}

impl RepairOutcome {
    /// Whether nothing was wrong, so nothing was changed.
    pub fn nothing_to_do(&self) -> bool {
        self.salvaged.is_none() && self.repaired.is_empty()
    }

    /// Adds what applying one more plan did.
    pub fn merge(&mut self, other: RepairOutcome) {
        if other.salvaged.is_some() {
            self.salvaged = other.salvaged;
        }
        self.repaired.extend(other.repaired);
    }
}

impl<'s> StateEditor<'s> {
    /// Takes `session`'s stack lock for the edits.
    pub async fn open(session: &'s StackSession) -> Result<StateEditor<'s>, OpsError> {
        let lock = session.lock().await?;
        Ok(StateEditor { session, lock })
    }

    /// Plans removing `urn` from the state. Refused when other resources depend on it or it is
    /// protected, unless `force`.
    pub async fn plan_delete(&self, urn: &Urn, force: bool) -> Result<DeletePlan, OpsError> {
        let mut snapshot = self.session.snapshot().await?;
        let target = self.find(&snapshot, urn)?;
        let id = target.id.clone();
        let protected = target.protect;
        let dependents: Vec<Urn> = snapshot
            .resources
            .iter()
            .filter(|resource| {
                resource.parent.as_ref() == Some(urn)
                    || resource.dependencies.contains(urn)
                    || resource.provider.as_deref().and_then(provider_urn) == Some(urn.as_str())
            })
            .map(|resource| resource.urn.clone())
            .collect();
        if !dependents.is_empty() && !force {
            let names: Vec<&str> = dependents.iter().map(Urn::as_str).collect();
            return Err(OpsError::Refused(format!(
                "`{urn}` cannot be removed from the state: {} depend on it (`{}`)\nhelp: remove those first, or pass `--force` to remove it anyway",
                dependents.len(),
                names.join("`, `")
            )));
        }
        if protected && !force {
            return Err(OpsError::Refused(format!(
                "`{urn}` is protected\nhelp: run `cairn state unprotect {urn}` first, or pass `--force`"
            )));
        }
        // Only the live resource goes: a replaced copy awaiting deletion under the same URN
        // (another ID) stays for the next update to delete.
        snapshot
            .resources
            .retain(|resource| &resource.urn != urn || resource.id != id);
        Ok(DeletePlan {
            urn: urn.clone(),
            id,
            dependents,
            protected,
            snapshot,
        })
    }

    /// Removes the resource `plan` names from the state.
    pub async fn delete(&self, plan: DeletePlan) -> Result<(), OpsError> {
        self.save(&plan.snapshot).await
    }

    /// Plans clearing `urn`'s `protect` flag.
    pub async fn plan_unprotect(&self, urn: &Urn) -> Result<UnprotectPlan, OpsError> {
        let mut snapshot = self.session.snapshot().await?;
        let was_protected = self.find(&snapshot, urn)?.protect;
        for resource in &mut snapshot.resources {
            if &resource.urn == urn {
                resource.protect = false;
            }
        }
        Ok(UnprotectPlan {
            urn: urn.clone(),
            was_protected,
            snapshot,
        })
    }

    /// Clears the flag; nothing is written when the resource was not protected.
    pub async fn unprotect(&self, plan: UnprotectPlan) -> Result<(), OpsError> {
        if plan.was_protected {
            self.save(&plan.snapshot).await?;
        }
        Ok(())
    }

    /// Plans repairing the state: salvaging a journal damaged before its end, else dropping
    /// references to resources that do not exist and putting resources in dependency order.
    pub async fn plan_repair(&self) -> Result<RepairPlan, OpsError> {
        let session = self.session;
        if let Some(damage) = session.backend.journal_damage(&session.stack).await? {
            return Ok(RepairPlan {
                salvage: Some(damage),
                ..RepairPlan::default()
            });
        }
        let (changes, repaired) = repair_snapshot(&session.snapshot().await?);
        Ok(RepairPlan {
            salvage: None,
            changes,
            repaired: Some(repaired),
        })
    }

    /// Applies a repair plan: salvages the journal (the intact records before the damage
    /// applied, the journal moved aside) or writes the repaired resources.
    pub async fn repair(&self, plan: RepairPlan) -> Result<RepairOutcome, OpsError> {
        let session = self.session;
        if plan.salvage.is_some() {
            let salvaged = session
                .backend
                .salvage_journal(&session.stack, self.lock.as_ref())
                .await?;
            return Ok(RepairOutcome {
                salvaged,
                repaired: Vec::new(),
            });
        }
        if let Some(repaired) = &plan.repaired
            && !plan.changes.is_empty()
        {
            self.save(repaired).await?;
        }
        Ok(RepairOutcome {
            salvaged: None,
            repaired: plan.changes,
        })
    }

    fn find<'a>(&self, snapshot: &'a Snapshot, urn: &Urn) -> Result<&'a ResourceState, OpsError> {
        snapshot
            .resources
            .iter()
            .find(|resource| &resource.urn == urn && !resource.delete)
            .ok_or_else(|| {
                OpsError::Input(format!(
                    "no resource `{urn}` in stack `{}`",
                    self.session.stack.name
                ))
            })
    }

    /// Replaces the stack's checkpoint with `snapshot`, its secrets sealed with the stack's key.
    async fn save(&self, snapshot: &Snapshot) -> Result<(), OpsError> {
        let session = self.session;
        let deployment = cairn_state::deployment::encode_snapshot(
            snapshot,
            session.crypter.as_ref(),
            &cairn_state::persister::rfc3339_now(),
        )?;
        session
            .backend
            .import_deployment(&session.stack, deployment)
            .await?;
        Ok(())
    }
}

/// The URN a provider reference (`urn::id`) points at.
fn provider_urn(reference: &str) -> Option<&str> {
    reference.rsplit_once("::").map(|(urn, _id)| urn)
}

/// What repairing `snapshot` changes, and the repaired snapshot.
fn repair_snapshot(snapshot: &Snapshot) -> (Vec<RepairChange>, Snapshot) {
    let mut changes = Vec::new();
    let known: HashSet<&Urn> = snapshot
        .resources
        .iter()
        .map(|resource| &resource.urn)
        .collect();
    let mut repaired = snapshot.clone();
    for resource in &mut repaired.resources {
        let before = resource.dependencies.len();
        resource
            .dependencies
            .retain(|dependency| known.contains(dependency));
        if resource.dependencies.len() != before {
            changes.push(RepairChange::DropDependencies {
                urn: resource.urn.clone(),
                count: before - resource.dependencies.len(),
            });
        }
        if let Some(parent) = &resource.parent
            && !known.contains(parent)
        {
            changes.push(RepairChange::ClearParent {
                urn: resource.urn.clone(),
                parent: parent.clone(),
            });
            resource.parent = None;
        }
        if let Some(provider) = resource.provider.as_deref().and_then(provider_urn)
            && !known.iter().any(|urn| urn.as_str() == provider)
        {
            changes.push(RepairChange::ClearProvider {
                urn: resource.urn.clone(),
                provider: provider.to_owned(),
            });
            resource.provider = None;
        }
        for (property, urns) in resource.property_dependencies.iter_mut() {
            let before = urns.len();
            urns.retain(|dependency| known.contains(dependency));
            if urns.len() != before {
                changes.push(RepairChange::DropPropertyDependencies {
                    urn: resource.urn.clone(),
                    property: property.clone(),
                });
            }
        }
    }
    let ordered = cairn_engine::sort_by_dependencies(repaired.resources.clone());
    if ordered
        .iter()
        .map(|resource| &resource.urn)
        .ne(repaired.resources.iter().map(|resource| &resource.urn))
    {
        changes.push(RepairChange::Reorder);
    }
    repaired.resources = ordered;
    (changes, repaired)
}
