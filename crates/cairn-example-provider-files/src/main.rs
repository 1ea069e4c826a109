//! An example provider plugin built on `cairn-provider-sdk`: `files:index:File` manages one file
//! (`path`, replaced when it changes; `content`, updated in place) and `files:index:readFile`
//! reads one. The whole plugin is this `Provider` impl plus the one line in `main`.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::schema::{FunctionSchema, PropertySchema, PropertyType, ResourceSchema};
use cairn_core::{PackageSchema, PropertyMap, Value};
use cairn_provider::{
    CallContext, CheckFailure, CheckResponse, CreateResponse, DiffResponse, LogSeverity, Provider,
    ProviderError, ProviderResult, ReadResponse, diff_by_schema,
};
use sha2::Digest;

const FILE: &str = "files:index:File";
const READ_FILE: &str = "files:index:readFile";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cairn_provider_sdk::serve(Arc::new(Files::new())).await
}

struct Files {
    schema: PackageSchema,
}

impl Files {
    fn new() -> Files {
        let string = || PropertySchema::new(PropertyType::String);
        let file_inputs = [
            (
                "path".to_owned(),
                string()
                    .required()
                    .replaces()
                    .describe("the file, relative to the program"),
            ),
            (
                "content".to_owned(),
                string().required().describe("what the file holds"),
            ),
        ];
        let mut outputs: std::collections::BTreeMap<String, PropertySchema> =
            file_inputs.iter().cloned().collect();
        outputs.insert("size".to_owned(), PropertySchema::new(PropertyType::Number));
        outputs.insert("sha256".to_owned(), string());
        Files {
            schema: PackageSchema {
                name: "files".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                resources: vec![ResourceSchema {
                    token: FILE.to_owned(),
                    description: "A file with the given content".to_owned(),
                    inputs: file_inputs.into_iter().collect(),
                    outputs,
                    accepts_any_input: false,
                }],
                functions: vec![FunctionSchema {
                    token: READ_FILE.to_owned(),
                    description: "Reads a file".to_owned(),
                    inputs: [("path".to_owned(), string().required())].into(),
                    outputs: [("content".to_owned(), string())].into(),
                }],
                config: Default::default(),
            },
        }
    }
}

fn text<'a>(inputs: &'a PropertyMap, key: &str) -> &'a str {
    inputs.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn full_path(ctx: &CallContext, path: &str) -> PathBuf {
    ctx.cwd.join(path)
}

fn outputs_of(path: &str, content: &str) -> PropertyMap {
    PropertyMap::from([
        ("path".to_owned(), Value::string(path)),
        ("content".to_owned(), Value::string(content)),
        ("size".to_owned(), Value::Number(content.len() as f64)),
        (
            "sha256".to_owned(),
            Value::string(hex::encode(sha2::Sha256::digest(content.as_bytes()))),
        ),
    ])
}

fn failed(action: &str, path: &str, error: std::io::Error) -> ProviderError {
    ProviderError::Failed(format!("{action} `{path}`: {error}"))
}

#[async_trait]
impl Provider for Files {
    fn package(&self) -> &str {
        "files"
    }

    fn schema(&self) -> &PackageSchema {
        &self.schema
    }

    async fn check(
        &self,
        _ctx: &CallContext,
        _type_token: &str,
        _olds: Option<&PropertyMap>,
        news: &PropertyMap,
    ) -> ProviderResult<CheckResponse> {
        let failures = match news.get("path") {
            Some(Value::String(path)) if path.is_empty() => vec![CheckFailure {
                property: Some("path".to_owned()),
                reason: "`path` must not be empty".to_owned(),
            }],
            _ => Vec::new(),
        };
        Ok(CheckResponse {
            inputs: news.clone(),
            failures,
        })
    }

    async fn diff(
        &self,
        _ctx: &CallContext,
        type_token: &str,
        _id: &str,
        old_inputs: &PropertyMap,
        _old_outputs: &PropertyMap,
        news: &PropertyMap,
    ) -> ProviderResult<DiffResponse> {
        Ok(diff_by_schema(
            self.schema.resource(type_token),
            old_inputs,
            news,
        ))
    }

    async fn create(
        &self,
        ctx: &CallContext,
        _type_token: &str,
        inputs: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<CreateResponse> {
        let (path, content) = (text(inputs, "path"), text(inputs, "content"));
        if !preview {
            std::fs::write(full_path(ctx, path), content)
                .map_err(|error| failed("writing", path, error))?;
            ctx.log(
                LogSeverity::Info,
                &format!("wrote {} bytes to {path}", content.len()),
            );
        }
        Ok(CreateResponse {
            id: if preview {
                String::new()
            } else {
                path.to_owned()
            },
            outputs: outputs_of(path, content),
        })
    }

    async fn read(
        &self,
        ctx: &CallContext,
        _type_token: &str,
        id: &str,
        _inputs: &PropertyMap,
        _outputs: &PropertyMap,
    ) -> ProviderResult<Option<ReadResponse>> {
        match std::fs::read_to_string(full_path(ctx, id)) {
            Ok(content) => Ok(Some(ReadResponse {
                id: id.to_owned(),
                inputs: PropertyMap::from([
                    ("path".to_owned(), Value::string(id)),
                    ("content".to_owned(), Value::string(content.clone())),
                ]),
                outputs: outputs_of(id, &content),
            })),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(failed("reading", id, error)),
        }
    }

    async fn update(
        &self,
        ctx: &CallContext,
        _type_token: &str,
        id: &str,
        _old_inputs: &PropertyMap,
        _old_outputs: &PropertyMap,
        news: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<PropertyMap> {
        let content = text(news, "content");
        if !preview {
            std::fs::write(full_path(ctx, id), content)
                .map_err(|error| failed("writing", id, error))?;
        }
        Ok(outputs_of(id, content))
    }

    async fn delete(
        &self,
        ctx: &CallContext,
        _type_token: &str,
        id: &str,
        _inputs: &PropertyMap,
        _outputs: &PropertyMap,
    ) -> ProviderResult<()> {
        match std::fs::remove_file(full_path(ctx, id)) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(failed("removing", id, error)),
        }
    }

    async fn invoke(
        &self,
        ctx: &CallContext,
        function_token: &str,
        args: &PropertyMap,
    ) -> ProviderResult<PropertyMap> {
        if function_token != READ_FILE {
            return Err(ProviderError::UnknownFunction(function_token.to_owned()));
        }
        let path = text(args, "path");
        let content = std::fs::read_to_string(full_path(ctx, path))
            .map_err(|error| failed("reading", path, error))?;
        Ok(PropertyMap::from([(
            "content".to_owned(),
            Value::string(content),
        )]))
    }
}
