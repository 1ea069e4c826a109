//! Plain-data YAML (project and stack config files) as JSON values.

use serde_json::Value as Json;

/// Parses YAML text into JSON values (the stack file uses only plain data).
pub fn yaml_to_json(text: &str) -> Result<Json, String> {
    use saphyr::LoadableYamlNode;
    // Loading and converting recurse per level: a file nested thousands deep would overflow.
    if let Some(marker) = cairn_program::find_too_deep(text) {
        return Err(format!(
            "{}:{}: the file nests more than {} levels deep",
            marker.line(),
            marker.col() + 1,
            cairn_program::MAX_DOCUMENT_DEPTH
        ));
    }
    let documents = saphyr::Yaml::load_from_str(text).map_err(|error| {
        format!(
            "{}:{}: {}",
            error.marker().line(),
            error.marker().col() + 1,
            error.info()
        )
    })?;
    Ok(documents.first().map(convert).unwrap_or(Json::Null))
}

fn convert(node: &saphyr::Yaml<'_>) -> Json {
    use saphyr::{Scalar, Yaml};
    match node {
        Yaml::Value(Scalar::Null) => Json::Null,
        Yaml::Value(Scalar::Boolean(flag)) => Json::Bool(*flag),
        Yaml::Value(Scalar::Integer(number)) => Json::from(*number),
        Yaml::Value(Scalar::FloatingPoint(number)) => serde_json::Number::from_f64(number.0)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Yaml::Value(Scalar::String(text)) => Json::String(text.to_string()),
        Yaml::Representation(text, _, _) => Json::String(text.to_string()),
        Yaml::Sequence(items) => Json::Array(items.iter().map(convert).collect()),
        Yaml::Mapping(map) => Json::Object(
            map.iter()
                .map(|(key, value)| {
                    let key = match convert(key) {
                        Json::String(text) => text,
                        other => other.to_string(),
                    };
                    (key, convert(value))
                })
                .collect(),
        ),
        Yaml::Tagged(_, inner) => convert(inner),
        _ => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deeply_nested_file_is_refused_with_its_position() {
        let text: String = (0..5_000)
            .map(|level| format!("{}a:\n", " ".repeat(level)))
            .collect();
        let error = yaml_to_json(&format!("config:\n{text}")).unwrap_err();
        // Line 2's `a:` is a top-level key (level 1), so level 129 is line 130, indented 128.
        assert_eq!(error, "130:129: the file nests more than 128 levels deep");
    }

    #[test]
    fn reads_pulumi_shaped_files() {
        let json = yaml_to_json(
            "encryptionsalt: v1:x\nconfig:\n  proj:count: \"3\"\n  aws:region: us-east-1\n  proj:pw:\n    secure: v1:y\n",
        )
        .unwrap();
        assert_eq!(json["config"]["aws:region"], "us-east-1");
        assert_eq!(json["config"]["proj:pw"]["secure"], "v1:y");
    }
}
