//! Deciding a resource's step from its old state and the provider's diff, and applying the
//! `ignoreChanges` and `replaceOnChanges` options. Pure functions, unit-tested below.

use cairn_core::{PropertyMap, StepOp, Value};
use cairn_provider::DiffResponse;

/// What the engine will do to one resource, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub op: StepOp,
    /// Top-level inputs that changed.
    pub changed_keys: Vec<String>,
    /// Inputs whose change forces replacement.
    pub replace_keys: Vec<String>,
    /// Delete the old resource before creating its replacement.
    pub delete_before_replace: bool,
}

impl Decision {
    pub fn create() -> Decision {
        Decision {
            op: StepOp::Create,
            changed_keys: Vec::new(),
            replace_keys: Vec::new(),
            delete_before_replace: false,
        }
    }
}

/// Keeps the old value of every input named in `ignore_changes` (top-level names or dotted
/// paths into objects), so a change there never produces a step.
pub fn apply_ignore_changes(
    old_inputs: &PropertyMap,
    news: &mut PropertyMap,
    ignore_changes: &[String],
) {
    for path in ignore_changes {
        let segments: Vec<&str> = path.split('.').collect();
        copy_path(old_inputs, news, &segments);
    }
}

fn copy_path(old: &PropertyMap, new: &mut PropertyMap, segments: &[&str]) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    if rest.is_empty() {
        match old.get(*first) {
            Some(value) => {
                new.insert((*first).to_owned(), value.clone());
            }
            None => {
                new.remove(*first);
            }
        }
        return;
    }
    if let (Some(Value::Object(old_child)), Some(Value::Object(new_child))) =
        (old.get(*first), new.get_mut(*first))
    {
        copy_path(old_child, new_child, rest);
    }
}

/// Decides the step for a resource that exists in the old state.
pub fn decide(
    diff: &DiffResponse,
    replace_on_changes: &[String],
    delete_before_replace_option: bool,
) -> Decision {
    if !diff.has_changes() {
        return Decision {
            op: StepOp::Same,
            changed_keys: Vec::new(),
            replace_keys: Vec::new(),
            delete_before_replace: false,
        };
    }
    let mut replace_keys = diff.replace_keys.clone();
    for key in &diff.changed_keys {
        let forced_by_option = replace_on_changes.iter().any(|pattern| {
            pattern == "*" || pattern == key || pattern.split('.').next() == Some(key.as_str())
        });
        if forced_by_option && !replace_keys.contains(key) {
            replace_keys.push(key.clone());
        }
    }
    let op = if replace_keys.is_empty() {
        StepOp::Update
    } else {
        StepOp::Replace
    };
    Decision {
        op,
        changed_keys: diff.changed_keys.clone(),
        replace_keys,
        delete_before_replace: op == StepOp::Replace
            && (delete_before_replace_option || diff.delete_before_replace),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, Value)]) -> PropertyMap {
        entries
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect()
    }

    fn diff(changed: &[&str], replace: &[&str]) -> DiffResponse {
        DiffResponse {
            changed_keys: changed.iter().map(|key| (*key).to_owned()).collect(),
            replace_keys: replace.iter().map(|key| (*key).to_owned()).collect(),
            delete_before_replace: false,
        }
    }

    #[test]
    fn no_changes_is_same() {
        assert_eq!(decide(&diff(&[], &[]), &[], false).op, StepOp::Same);
    }

    #[test]
    fn changes_without_replace_keys_update() {
        let decision = decide(&diff(&["a"], &[]), &[], false);
        assert_eq!(decision.op, StepOp::Update);
        assert_eq!(decision.changed_keys, vec!["a"]);
    }

    #[test]
    fn provider_replace_keys_replace() {
        let decision = decide(&diff(&["a", "b"], &["b"]), &[], false);
        assert_eq!(decision.op, StepOp::Replace);
        assert!(!decision.delete_before_replace);
    }

    #[test]
    fn replace_on_changes_option_forces_replacement() {
        let decision = decide(&diff(&["a"], &[]), &["a".to_owned()], true);
        assert_eq!(decision.op, StepOp::Replace);
        assert_eq!(decision.replace_keys, vec!["a"]);
        assert!(decision.delete_before_replace);
        let star = decide(&diff(&["z"], &[]), &["*".to_owned()], false);
        assert_eq!(star.op, StepOp::Replace);
    }

    #[test]
    fn delete_before_replace_only_applies_to_replacements() {
        let decision = decide(&diff(&["a"], &[]), &[], true);
        assert_eq!(decision.op, StepOp::Update);
        assert!(!decision.delete_before_replace);
    }

    #[test]
    fn ignore_changes_keeps_old_values() {
        let old = map(&[
            ("a", Value::from("old")),
            ("tags", Value::Object(map(&[("x", Value::from("1"))]))),
        ]);
        let mut news = map(&[
            ("a", Value::from("new")),
            ("b", Value::from("added")),
            (
                "tags",
                Value::Object(map(&[("x", Value::from("2")), ("y", Value::from("3"))])),
            ),
        ]);
        apply_ignore_changes(
            &old,
            &mut news,
            &["a".to_owned(), "b".to_owned(), "tags.x".to_owned()],
        );
        assert_eq!(
            news,
            map(&[
                ("a", Value::from("old")),
                (
                    "tags",
                    Value::Object(map(&[("x", Value::from("1")), ("y", Value::from("3"))]))
                ),
            ])
        );
    }
}
