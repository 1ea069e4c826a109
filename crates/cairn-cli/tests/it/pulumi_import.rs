//! A deployment exported by `pulumi stack export` (Pulumi's passphrase secrets, versioned default
//! providers, bridged-provider `__defaults`, null property dependencies) imports into a Cairn
//! stack, and the same program then previews with no changes.
//!
//! The fixture is shaped as `pulumi stack export` prints it for this program with random v4.16.
//! Its salt and the sealing of the `token` output are Pulumi's passphrase scheme for the
//! passphrase `correct horse` (the salt from an independent implementation; the output sealed
//! by cairn-secrets, whose Pulumi scheme is checked against pulumi-crypto's own vector).

use crate::support::{TestContext, files_under};

const FIXTURE: &str = include_str!("../fixtures/pulumi-export-random.json");

const PROGRAM: &str = r#"name: petshop
runtime: yaml
resources:
  pet:
    type: random:RandomPet
    properties:
      length: 2
  suffix:
    type: random:RandomString
    properties:
      length: 8
      special: false
outputs:
  name: ${pet.id}
  suffix: ${suffix.result}
  token:
    fn::secret: s3cr3t-value
"#;

fn run(context: &TestContext, args: &[&str]) -> crate::support::Run {
    let output = context
        .command(args)
        // The passphrase the fixture's secrets were sealed with.
        .env("CAIRN_CONFIG_PASSPHRASE", "correct horse")
        .output()
        .unwrap();
    crate::support::Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn a_pulumi_export_imports_and_previews_with_no_changes() {
    let context = TestContext::new();
    std::fs::write(context.project().join("Pulumi.yaml"), PROGRAM).unwrap();
    let fixture = context.root.path().join("export.json");
    std::fs::write(&fixture, FIXTURE).unwrap();
    run(&context, &["stack", "init", "dev"]).success();
    run(
        &context,
        &["stack", "import", "--file", fixture.to_str().unwrap()],
    )
    .success();

    let preview = run(&context, &["preview"]).success();
    assert!(
        preview.stdout.contains("Resources: 3 unchanged"),
        "{}",
        preview.stdout
    );
    let token = run(&context, &["stack", "output", "token", "--show-secrets"]).success();
    assert_eq!(token.stdout.trim(), "s3cr3t-value");
    assert_eq!(
        run(&context, &["stack", "output", "name"])
            .success()
            .stdout
            .trim(),
        "hopeful-tortoise"
    );
    // The secret was sealed again under this stack's own salt: no plaintext on disk.
    for file in files_under(&context.home()) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert!(!text.contains("s3cr3t-value"), "{}", file.display());
    }

    // An up changes nothing either; the versioned default provider is kept.
    let up = run(&context, &["up", "--yes"]).success();
    assert!(up.stdout.contains("3 unchanged"), "{}", up.stdout);
    let export = run(&context, &["stack", "export"]).success();
    assert!(
        export.stdout.contains("default_4_16_6"),
        "{}",
        export.stdout
    );
}

#[test]
fn an_export_of_another_stack_or_with_unknown_providers_is_refused_and_nothing_written() {
    let context = TestContext::new();
    std::fs::write(context.project().join("Pulumi.yaml"), PROGRAM).unwrap();
    run(&context, &["stack", "init", "prod"]).success();
    let fixture = context.root.path().join("export.json");
    std::fs::write(&fixture, FIXTURE).unwrap();
    let other_stack = run(
        &context,
        &["stack", "import", "--file", fixture.to_str().unwrap()],
    )
    .expect_code(2);
    assert!(
        other_stack.stderr.contains("belongs to stack `dev`"),
        "{}",
        other_stack.stderr
    );

    run(&context, &["stack", "init", "dev"]).success();
    let unknown = FIXTURE.replace("random:index/randomPet:RandomPet", "aws:s3/bucket:Bucket");
    std::fs::write(&fixture, unknown).unwrap();
    let refused = run(
        &context,
        &["stack", "import", "--file", fixture.to_str().unwrap()],
    )
    .expect_code(2);
    assert!(
        refused
            .stderr
            .contains("no provider here manages `aws:s3/bucket:Bucket`"),
        "{}",
        refused.stderr
    );
    let export = run(&context, &["stack", "export"]).success();
    assert!(
        !export.stdout.contains("hopeful-tortoise"),
        "{}",
        export.stdout
    );
}
