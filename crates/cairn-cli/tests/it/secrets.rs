//! Secrets never appear in plaintext: not on disk, not in output, not in state.

use crate::support::{TestContext, files_under};

const PROGRAM: &str = r#"
name: secretive
runtime: yaml
config:
  token:
    type: string
    secret: true
resources:
  password:
    type: random:RandomPassword
    properties:
      length: 24
      special: false
  echo:
    type: fake:Resource
    properties:
      copied: ${token}
      wrapped:
        fn::secret: wrapped-plaintext-value
  sealedString:
    type: random:RandomString
    properties:
      length: 32
      special: false
    options:
      additionalSecretOutputs: [result]
  sealedStdout:
    type: command:local:Command
    properties:
      create: "head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'"
    options:
      additionalSecretOutputs: [stdout]
outputs:
  password: ${password.result}
  sealedString: ${sealedString.result}
  sealedStdout: ${sealedStdout.stdout}
  token: ${token}
  plain: visible
"#;

const TOKEN: &str = "tok-plaintext-8d1f2a";

#[test]
fn secrets_never_reach_disk_or_output_in_plaintext() {
    let context = TestContext::with_program(PROGRAM);
    context
        .cairn(&["config", "set", "--secret", "token", TOKEN])
        .success();
    let up = context.cairn(&["up", "--yes"]).success();
    let outputs = context.cairn(&["stack", "output", "--json"]).success();
    let json: serde_json::Value = serde_json::from_str(&outputs.stdout).unwrap();
    assert_eq!(json["password"], "[secret]");
    assert_eq!(json["token"], "[secret]");
    assert_eq!(json["sealedString"], "[secret]");
    assert_eq!(json["sealedStdout"], "[secret]");
    assert_eq!(json["plain"], "visible");

    let revealed = context
        .cairn(&["stack", "output", "--json", "--show-secrets"])
        .success();
    let revealed: serde_json::Value = serde_json::from_str(&revealed.stdout).unwrap();
    assert_eq!(revealed["token"], TOKEN);
    let password = revealed["password"].as_str().unwrap().to_owned();
    assert_eq!(password.len(), 24);
    // `additionalSecretOutputs` makes outputs that are not secret in their schema as secret as
    // the password: a command's stdout (also kept out of its log lines) and a RandomString's
    // result. That result is also the RandomString's ID, which is stored in plaintext (as in
    // Pulumi), so `up` warns and the files are searched for the stdout only.
    let sealed_stdout = revealed["sealedStdout"].as_str().unwrap().to_owned();
    assert_eq!(sealed_stdout.len(), 32, "{sealed_stdout:?}");
    assert_eq!(revealed["sealedString"].as_str().unwrap().len(), 32);
    assert!(
        up.stderr
            .contains("`sealedString`: `additionalSecretOutputs` cannot hide `result`"),
        "{}",
        up.stderr
    );
    let checkpoint = context.resource("sealedString");
    assert!(
        checkpoint["outputs"]["result"]["ciphertext"].is_string(),
        "{checkpoint}"
    );
    assert_eq!(
        context
            .cairn(&["stack", "output", "password", "--show-secrets"])
            .success()
            .stdout
            .trim(),
        password
    );
    assert_eq!(
        context
            .cairn(&["stack", "output", "password"])
            .success()
            .stdout
            .trim(),
        "[secret]"
    );

    let export = context.cairn(&["stack", "export"]).success();
    let preview = context.cairn(&["preview", "--diff"]).success();
    let config = context.cairn(&["config"]).success();
    let history = context.cairn(&["stack", "history", "--json"]).success();
    let json_up = context.cairn(&["up", "--yes", "--json"]).success();
    let logs = context.cairn(&["logs"]).success();
    // The command's output is logged, masked: its stdout was known to be secret only after it
    // ran, so its log lines waited for that.
    assert!(
        logs.stdout.contains("[sealedStdout] [secret]"),
        "{}",
        logs.stdout
    );
    let plaintexts = [
        TOKEN,
        password.as_str(),
        "wrapped-plaintext-value",
        sealed_stdout.as_str(),
    ];
    for output in [
        &up, &outputs, &export, &preview, &config, &history, &json_up, &logs,
    ] {
        for plaintext in plaintexts {
            assert!(
                !output.stdout.contains(plaintext),
                "leaked in stdout: {}",
                output.stdout
            );
            assert!(
                !output.stderr.contains(plaintext),
                "leaked in stderr: {}",
                output.stderr
            );
        }
    }
    // Everything Cairn wrote: state, history, stack config, login and workspace files. The
    // program itself holds the `fn::secret` literal, as the user wrote it.
    let files: Vec<_> = files_under(context.root.path())
        .into_iter()
        .filter(|file| !file.ends_with("project/Cairn.yaml"))
        .collect();
    assert!(files.len() > 3, "expected state files under the test root");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for plaintext in plaintexts {
            assert!(
                !text.contains(plaintext),
                "`{plaintext}` in plaintext in {}",
                file.display()
            );
        }
    }
    // The exported state carries secrets in Pulumi's sealed form.
    assert!(export.stdout.contains("1b47061264138c4ac30d75fd1eb44270"));
}

#[test]
fn wrong_passphrase_is_a_clear_error() {
    let context = TestContext::with_program(PROGRAM);
    context
        .cairn(&["config", "set", "--secret", "token", TOKEN])
        .success();
    let run = context
        .command(&["config", "get", "token"])
        .env("CAIRN_CONFIG_PASSPHRASE", "not-the-passphrase")
        .output()
        .unwrap();
    // Bad input that changed nothing.
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("passphrase"), "{stderr}");
    assert!(!stderr.contains(TOKEN));
    assert_eq!(
        context
            .cairn(&["config", "get", "token"])
            .success()
            .stdout
            .trim(),
        TOKEN
    );
}

#[test]
fn a_pulumi_stack_file_with_pulumi_secrets_works_unchanged() {
    // A stack file as `pulumi config set --secret token s3cr3t-value` writes it, for the
    // passphrase `correct horse` (made by an independent implementation of Pulumi's scheme).
    let salt = "v1:aXx0U3t05rg=:v1:78hHLumIeruNhoAk:6DoZAhKB9JxKjK7vYT6j3n2678hOww==";
    let stack_file = format!(
        "encryptionsalt: {salt}\nconfig:\n  pulumi-secrets:token:\n    secure: v1:TYTw9ZHHTdW2qo2E:kzvNu1mP51g+rHTnbzU4umN3QY78kZtnUabRGA==\n"
    );
    let context = TestContext::new();
    std::fs::write(
        context.project().join("Pulumi.yaml"),
        "name: pulumi-secrets\nruntime: yaml\nconfig:\n  token:\n    type: string\n    secret: true\nresources:\n  user:\n    type: fake:Resource\n    properties:\n      token: ${token}\noutputs:\n  token: ${token}\n",
    )
    .unwrap();
    std::fs::write(context.project().join("Pulumi.dev.yaml"), &stack_file).unwrap();
    let run = |args: &[&str]| {
        let output = context
            .command(args)
            .env("CAIRN_CONFIG_PASSPHRASE", "correct horse")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    run(&["stack", "init", "dev"]);
    assert_eq!(run(&["config", "get", "token"]).trim(), "s3cr3t-value");
    run(&["up", "--yes"]);
    assert_eq!(
        run(&["stack", "output", "token", "--show-secrets"]).trim(),
        "s3cr3t-value"
    );
    assert_eq!(run(&["stack", "output", "token"]).trim(), "[secret]");
    // The stack file keeps Pulumi's salt, so `pulumi` can still read it.
    let after = std::fs::read_to_string(context.project().join("Pulumi.dev.yaml")).unwrap();
    assert!(after.contains(salt), "{after}");
    for file in files_under(&context.home()) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert!(
            !text.contains("s3cr3t-value"),
            "plaintext in {}",
            file.display()
        );
    }
}

/// A program whose commands echo three kinds of secret: a RandomPassword made earlier in the
/// same run (by a command that then fails), an `fn::secret` variable, and a config secret (by a
/// command that fails with it on stderr).
const ECHOING_PROGRAM: &str = r#"
name: echoing
runtime: yaml
config:
  token:
    type: string
    secret: true
variables:
  wrapped:
    fn::secret: fn-secret-plaintext-5c1e
resources:
  pw:
    type: random:RandomPassword
    properties:
      length: 28
      special: false
  echoPassword:
    type: command:local:Command
    properties:
      create: "echo ${pw.result}; exit 1"
  echoWrapped:
    type: command:local:Command
    properties:
      create: "echo ${wrapped}"
  echoToken:
    type: command:local:Command
    properties:
      create: "echo ${token} >&2; exit 3"
outputs:
  password: ${pw.result}
  wrapped: ${echoWrapped.stdout}
"#;

const ECHOED_TOKEN: &str = "echoed-token-77ab0e";

#[test]
fn secrets_echoed_by_commands_are_masked_in_errors_logs_and_outputs() {
    let context = TestContext::with_program(ECHOING_PROGRAM);
    context
        .cairn(&["config", "set", "--secret", "token", ECHOED_TOKEN])
        .success();
    // The first run creates the password and has a command echo it in the same run.
    let up = context.cairn(&["up", "--yes"]).expect_code(1);
    assert!(
        up.stdout.contains("exited with code 1") || up.stderr.contains("exited with code 1"),
        "the failure is reported\n{}\n{}",
        up.stdout,
        up.stderr
    );
    let json_up = context.cairn(&["up", "--yes", "--json"]).expect_code(1);
    let revealed = context
        .cairn(&["stack", "output", "--json", "--show-secrets"])
        .success();
    let revealed: serde_json::Value = serde_json::from_str(&revealed.stdout).unwrap();
    let password = revealed["password"].as_str().unwrap().to_owned();
    assert_eq!(password.len(), 28);
    assert_eq!(revealed["wrapped"], "fn-secret-plaintext-5c1e");

    // A command's stdout that repeats a secret is itself a secret.
    let outputs = context.cairn(&["stack", "output", "--json"]).success();
    let json: serde_json::Value = serde_json::from_str(&outputs.stdout).unwrap();
    assert_eq!(json["wrapped"], "[secret]", "{}", outputs.stdout);
    let plain_outputs = context.cairn(&["stack", "output"]).success();

    let logs = context.cairn(&["logs"]).success();
    let json_logs = context.cairn(&["logs", "--json"]).success();
    for (what, masked) in [
        ("the password", "[echoPassword] [secret]"),
        ("the fn::secret", "[echoWrapped] [secret]"),
    ] {
        assert!(
            logs.stdout.contains(masked),
            "{what} is logged masked\n{}",
            logs.stdout
        );
    }
    let plaintexts = [password.as_str(), "fn-secret-plaintext-5c1e", ECHOED_TOKEN];
    for (name, run) in [
        ("up", &up),
        ("up --json", &json_up),
        ("logs", &logs),
        ("logs --json", &json_logs),
        ("stack output --json", &outputs),
        ("stack output", &plain_outputs),
    ] {
        for plaintext in plaintexts {
            assert!(
                !run.stdout.contains(plaintext) && !run.stderr.contains(plaintext),
                "`{plaintext}` leaked by `{name}`\n--- stdout ---\n{}\n--- stderr ---\n{}",
                run.stdout,
                run.stderr
            );
        }
    }
    // The errors, masked, still say what failed and quote the commands' output.
    for run in [&up, &json_up] {
        // `--json` escapes the newlines inside an error.
        let text = format!("{}{}", run.stdout, run.stderr).replace("\\n", "\n");
        for quoted in ["stdout:\n[secret]", "stderr:\n[secret]"] {
            assert!(text.contains(quoted), "no `{quoted}` in\n{text}");
        }
    }
    // Everything Cairn wrote, the backend's logs and history included; the program holds the
    // `fn::secret` literal as the user wrote it.
    let files: Vec<_> = files_under(context.root.path())
        .into_iter()
        .filter(|file| !file.ends_with("project/Cairn.yaml"))
        .collect();
    assert!(files.len() > 3, "expected state files under the test root");
    for file in files {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        for plaintext in plaintexts {
            assert!(
                !text.contains(plaintext),
                "`{plaintext}` in plaintext in {}",
                file.display()
            );
        }
    }
}

#[test]
fn additional_secret_outputs_added_to_an_unchanged_resource_seal_its_stored_output() {
    let program = |options: &str| {
        format!(
            "name: later\nruntime: yaml\nresources:\n  greet:\n    type: command:local:Command\n    properties:\n      create: \"echo later-plaintext-0f3a\"\n{options}outputs:\n  said: ${{greet.stdout}}\n"
        )
    };
    let context = TestContext::with_program(&program(""));
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(
        context.resource("greet")["outputs"]["stdout"],
        "later-plaintext-0f3a"
    );

    context.write_program(&program(
        "    options:\n      additionalSecretOutputs: [stdout]\n",
    ));
    let up = context.cairn(&["up", "--yes"]).success();
    // Nothing about the command changed, so it is not run again; its stored output is sealed.
    assert!(
        up.stdout.contains("Resources: 2 unchanged"),
        "{}",
        up.stdout
    );
    let stdout = &context.resource("greet")["outputs"]["stdout"];
    assert!(stdout["ciphertext"].is_string(), "{stdout}");
    let output = context.cairn(&["stack", "output", "said"]).success();
    assert_eq!(output.stdout.trim(), "[secret]");
}
