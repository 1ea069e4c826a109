//! Step kinds: what the engine does to one resource in one operation, with Pulumi's symbols.

/// The operation a step performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StepOp {
    Same,
    Create,
    Update,
    /// Create the replacement and delete the old resource (Pulumi's `+-`).
    Replace,
    Delete,
    /// Read an existing resource (`get`).
    Read,
    /// Adopt an existing resource into the stack (the `import` option).
    Import,
    /// Refresh found the resource changed outside Cairn.
    Refresh,
}

impl StepOp {
    /// The symbol Pulumi prints in front of a resource.
    pub fn symbol(self) -> &'static str {
        match self {
            StepOp::Same => " ",
            StepOp::Create => "+",
            StepOp::Update => "~",
            StepOp::Replace => "+-",
            StepOp::Delete => "-",
            StepOp::Read => ">",
            StepOp::Import => "=",
            StepOp::Refresh => "~",
        }
    }

    /// The word used in preview ("create") and in summaries.
    pub fn verb(self) -> &'static str {
        match self {
            StepOp::Same => "same",
            StepOp::Create => "create",
            StepOp::Update => "update",
            StepOp::Replace => "replace",
            StepOp::Delete => "delete",
            StepOp::Read => "read",
            StepOp::Import => "import",
            StepOp::Refresh => "refresh",
        }
    }

    /// The past tense used after an update ("created").
    pub fn past_tense(self) -> &'static str {
        match self {
            StepOp::Same => "unchanged",
            StepOp::Create => "created",
            StepOp::Update => "updated",
            StepOp::Replace => "replaced",
            StepOp::Delete => "deleted",
            StepOp::Read => "read",
            StepOp::Import => "imported",
            StepOp::Refresh => "refreshed",
        }
    }

    /// The progressive form shown while a step runs ("creating").
    pub fn progressive(self) -> &'static str {
        match self {
            StepOp::Same => "",
            StepOp::Create => "creating",
            StepOp::Update => "updating",
            StepOp::Replace => "replacing",
            StepOp::Delete => "deleting",
            StepOp::Read => "reading",
            StepOp::Import => "importing",
            StepOp::Refresh => "refreshing",
        }
    }

    /// The future form used in preview summaries ("to create").
    pub fn future_tense(self) -> &'static str {
        match self {
            StepOp::Same => "unchanged",
            StepOp::Create => "to create",
            StepOp::Update => "to update",
            StepOp::Replace => "to replace",
            StepOp::Delete => "to delete",
            StepOp::Read => "to read",
            StepOp::Import => "to import",
            StepOp::Refresh => "to refresh",
        }
    }
}
