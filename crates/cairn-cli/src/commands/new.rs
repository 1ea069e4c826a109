//! `cairn new TEMPLATE`: a new project from a built-in template, with its first stack.

use crate::cli::NewArgs;
use crate::output;
use crate::workspace::Workspace;

/// Built-in templates: name, what it shows, the project file with `{{name}}` and
/// `{{description}}` placeholders (YAML's own `${...}` stays untouched).
const TEMPLATES: [(&str, &str, &str); 2] = [
    (
        "random-yaml",
        "A random pet name and a secret password (the `random` provider)",
        include_str!("../../templates/random-yaml/Cairn.yaml"),
    ),
    (
        "command-yaml",
        "A local command run on up and destroy (the `command` provider)",
        include_str!("../../templates/command-yaml/Cairn.yaml"),
    ),
];

pub async fn new(workspace: &Workspace, args: NewArgs) -> anyhow::Result<()> {
    let Some(template) = args.template.as_deref() else {
        output::line("Available templates:");
        for (name, description, _) in TEMPLATES {
            output::line(&format!("  {name:<16} {description}"));
        }
        return Ok(());
    };
    let Some((_, description, text)) = TEMPLATES.iter().find(|(name, _, _)| *name == template)
    else {
        let names: Vec<&str> = TEMPLATES.iter().map(|(name, _, _)| *name).collect();
        return Err(crate::bad_input(format!(
            "no template named `{template}`\nhelp: the built-in templates are {}",
            names.join(", ")
        )));
    };
    let dir = match &args.dir {
        Some(dir) if dir.is_absolute() => dir.clone(),
        Some(dir) => workspace.project_dir.join(dir),
        None => workspace.project_dir.clone(),
    };
    let is_empty = match fs_err::read_dir(&dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => true,
    };
    if !is_empty && !args.force {
        return Err(crate::bad_input(format!(
            "`{}` is not empty\nhelp: pass `--dir` for a new directory, or `--force` to write into it anyway",
            dir.display()
        )));
    }
    let name = match &args.name {
        Some(name) => name.clone(),
        None => project_name_from(&dir),
    };
    // Both names are checked before anything is written: a refused one changes nothing.
    cairn_state::stack_ref::validate_project_name(&name)
        .map_err(|error| crate::bad_input(format!("{error}\nhelp: pass `--name`")))?;
    if let Some(stack) = &workspace.global.stack {
        cairn_state::StackRef::parse(stack, &name).map_err(crate::bad_input)?;
    }
    let project_description = args.description.as_deref().unwrap_or(description);
    let project = text
        .replace("{{name}}", &name)
        .replace("{{description}}", &yaml_string(project_description));
    fs_err::create_dir_all(&dir)?;
    fs_err::write(dir.join("Cairn.yaml"), project)?;
    output::line(&format!(
        "Created project '{name}' from template '{template}' in {}",
        dir.display()
    ));

    let mut global = workspace.global.clone();
    global.cwd = Some(dir.clone());
    let project_workspace = Workspace::new(global)?;
    // `--stack` names the first stack, as with `pulumi new`; `dev` otherwise.
    let stack = workspace
        .global
        .stack
        .clone()
        .unwrap_or_else(|| "dev".to_owned());
    super::stack::init(&project_workspace, Some(stack)).await?;
    output::line(&format!("Next: `cd {}` and `cairn up`", dir.display()));
    Ok(())
}

/// The directory's name, made into a valid project name.
fn project_name_from(dir: &std::path::Path) -> String {
    let base = dir
        .canonicalize()
        .unwrap_or_else(|_| dir.to_path_buf())
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    base.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A YAML double-quoted scalar.
fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}
