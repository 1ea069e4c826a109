//! Resource states and snapshots: what the engine knows about a stack's resources after an
//! operation. The state crate turns these into versioned files; the engine never serializes them.

use crate::urn::Urn;
use crate::value::PropertyMap;

/// One resource as recorded in a snapshot.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ResourceState {
    pub urn: Urn,
    /// A custom resource is managed by a provider; a component (and the root stack) is not.
    pub custom: bool,
    /// The provider-assigned ID; empty for components.
    pub id: String,
    /// The canonical type token.
    pub type_: String,
    pub inputs: PropertyMap,
    pub outputs: PropertyMap,
    pub parent: Option<Urn>,
    pub dependencies: Vec<Urn>,
    /// Input property name → the resources it depends on.
    pub property_dependencies: std::collections::BTreeMap<String, Vec<Urn>>,
    /// `<provider urn>::<provider id>`, for custom resources.
    pub provider: Option<String>,
    pub protect: bool,
    pub retain_on_delete: bool,
    /// The resource was read (`get`), not created: Cairn does not own it and never deletes it.
    pub external: bool,
    /// An old copy waiting to be deleted after its replacement was created.
    pub delete: bool,
    pub delete_before_replace: bool,
    pub ignore_changes: Vec<String>,
    pub replace_on_changes: Vec<String>,
    pub aliases: Vec<Urn>,
    /// `deletedWith`: when that resource is deleted in the same operation, this one's provider
    /// delete is skipped (deleting the other takes this one with it).
    pub deleted_with: Option<Urn>,
    /// `customTimeouts` in seconds (create, update, delete).
    pub custom_timeouts: CustomTimeouts,
}

impl Default for Urn {
    fn default() -> Self {
        Urn::new("", "", None, "", "")
    }
}

/// Per-operation time limits, in seconds; zero means none.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct CustomTimeouts {
    pub create: f64,
    pub update: f64,
    pub delete: f64,
}

/// A step that began but whose outcome is not recorded: the resource may or may not exist.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingOperation {
    pub kind: PendingOperationKind,
    pub resource: ResourceState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingOperationKind {
    Creating,
    Updating,
    Deleting,
    Reading,
}

impl PendingOperationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PendingOperationKind::Creating => "creating",
            PendingOperationKind::Updating => "updating",
            PendingOperationKind::Deleting => "deleting",
            PendingOperationKind::Reading => "reading",
        }
    }
}

/// The state of a stack: its resources in dependency order (every resource after its parent
/// and dependencies) and the operations that began but did not finish.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Snapshot {
    pub resources: Vec<ResourceState>,
    pub pending_operations: Vec<PendingOperation>,
}

impl Snapshot {
    pub fn resource(&self, urn: &Urn) -> Option<&ResourceState> {
        self.resources.iter().find(|resource| &resource.urn == urn)
    }

    /// The stack's outputs: the outputs of its root `pulumi:pulumi:Stack` resource.
    pub fn stack_outputs(&self) -> PropertyMap {
        self.resources
            .iter()
            .find(|resource| resource.type_ == crate::urn::ROOT_STACK_TYPE)
            .map(|resource| resource.outputs.clone())
            .unwrap_or_default()
    }
}
