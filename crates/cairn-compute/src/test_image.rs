//! The image tests run containers from (feature `test-image`): no registry is reachable, so it
//! is built here `FROM scratch` out of Debian's static busybox (`scripts/ensure-busybox.sh`
//! installs it when missing), with the applets a test needs linked under `/bin`.

use std::path::Path;

use futures_util::StreamExt;

/// Builds `tag` from busybox with `applets` linked, and `dockerfile_tail` (a `HEALTHCHECK`, a
/// `CMD`) after `COPY bin /bin`. Built without the engine's cache, which can take another
/// test's busybox layer (other applet links) for this one's. Labelled `cairn.test=1`.
pub async fn build_busybox_image(
    docker: &bollard::Docker,
    tag: &str,
    applets: &[&str],
    dockerfile_tail: &str,
) -> Result<(), String> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ensure-busybox.sh");
        let status = std::process::Command::new("bash")
            .arg(&script)
            .status()
            .map_err(|error| format!("running {}: {error}", script.display()))?;
        if !status.success() {
            return Err("installing busybox-static failed".to_owned());
        }
    }
    let binary =
        std::fs::read(busybox).map_err(|error| format!("reading /bin/busybox: {error}"))?;
    let failed = |error: std::io::Error| format!("making the build context: {error}");
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(binary.len() as u64);
    header.set_mode(0o755);
    archive
        .append_data(&mut header, "bin/busybox", binary.as_slice())
        .map_err(failed)?;
    for applet in applets {
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        link.set_mode(0o777);
        archive
            .append_link(&mut link, format!("bin/{applet}"), "busybox")
            .map_err(failed)?;
    }
    let dockerfile = format!("FROM scratch\nCOPY bin /bin\n{dockerfile_tail}\n");
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    archive
        .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .map_err(failed)?;
    let context = archive.into_inner().map_err(failed)?;
    let options = bollard::query_parameters::BuildImageOptions {
        t: Some(tag.to_owned()),
        rm: true,
        nocache: true,
        labels: Some([("cairn.test".to_owned(), "1".to_owned())].into()),
        ..Default::default()
    };
    let mut build = docker.build_image(
        options,
        None,
        Some(bollard::body_full(bytes::Bytes::from(context))),
    );
    while let Some(step) = build.next().await {
        let step = step.map_err(|error| format!("building the test image: {error}"))?;
        if let Some(error) = step.error_detail {
            return Err(format!("building the test image: {error:?}"));
        }
    }
    Ok(())
}
