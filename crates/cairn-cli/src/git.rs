//! What an update records about the project's git repository (seed 000's environment keys:
//! `git.head`, `git.dirty`, `git.committer`, `git.author` and their emails, plus `git.headName`
//! and the `origin` remote as `vcs.*` / `github.*`). Read with the `git` program the user has;
//! without git or outside a repository, nothing is recorded.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The environment entries for an update run in `dir`.
pub fn environment(dir: &Path) -> BTreeMap<String, String> {
    let mut environment = BTreeMap::new();
    environment.insert(
        "cairn.version".to_owned(),
        env!("CARGO_PKG_VERSION").to_owned(),
    );
    let git = |args: &[&str]| -> Option<String> {
        let output = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_OPTIONAL_LOCKS", "0")
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "HEAD"]) else {
        return environment;
    };
    environment.insert("git.head".to_owned(), head);
    if let Some(name) = git(&["symbolic-ref", "-q", "HEAD"]) {
        environment.insert("git.headName".to_owned(), name);
    }
    if let Some(status) = git(&["status", "--porcelain", "--untracked-files=no"]) {
        environment.insert("git.dirty".to_owned(), (!status.is_empty()).to_string());
    }
    if let Some(people) = git(&["log", "-1", "--format=%an%x00%ae%x00%cn%x00%ce"]) {
        let fields: Vec<&str> = people.split('\0').collect();
        for (key, value) in [
            "git.author",
            "git.author.email",
            "git.committer",
            "git.committer.email",
        ]
        .into_iter()
        .zip(fields)
        {
            environment.insert(key.to_owned(), value.to_owned());
        }
    }
    if let Some(url) = git(&["remote", "get-url", "origin"])
        && let Some((host, owner, repo)) = parse_remote(&url)
    {
        let kind = match host.as_str() {
            "github.com" => "github.com",
            "gitlab.com" => "gitlab.com",
            "bitbucket.org" => "bitbucket.org",
            _ => host.as_str(),
        };
        if kind == "github.com" {
            environment.insert("github.login".to_owned(), owner.clone());
            environment.insert("github.repo".to_owned(), repo.clone());
        }
        environment.insert("vcs.kind".to_owned(), kind.to_owned());
        environment.insert("vcs.owner".to_owned(), owner);
        environment.insert("vcs.repo".to_owned(), repo);
    }
    environment
}

/// (host, owner, repo) of a remote URL: `https://github.com/o/r.git`, `git@github.com:o/r.git`,
/// `ssh://git@host/o/r`.
pub fn parse_remote(url: &str) -> Option<(String, String, String)> {
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest.to_owned(),
        // scp-like: git@github.com:owner/repo.git
        None => url.replacen(':', "/", 1),
    };
    let rest = rest
        .rsplit_once('@')
        .map_or(rest.as_str(), |(_, host)| host);
    let mut parts = rest.trim_end_matches('/').split('/');
    let host = parts.next()?.split(':').next()?.to_owned();
    if host.is_empty() {
        return None;
    }
    let segments: Vec<&str> = parts.filter(|part| !part.is_empty()).collect();
    let (repo, owner) = segments.split_last()?;
    if owner.is_empty() {
        return None;
    }
    let repo = repo.trim_end_matches(".git").to_owned();
    Some((host, owner.join("/"), repo))
}

#[cfg(test)]
mod tests {
    use super::parse_remote;

    #[test]
    fn remotes_in_every_spelling() {
        let expected = Some((
            "github.com".to_owned(),
            "acme".to_owned(),
            "infra".to_owned(),
        ));
        assert_eq!(parse_remote("https://github.com/acme/infra.git"), expected);
        assert_eq!(parse_remote("git@github.com:acme/infra.git"), expected);
        assert_eq!(parse_remote("ssh://git@github.com/acme/infra"), expected);
        assert_eq!(
            parse_remote("https://gitlab.com/group/sub/proj"),
            Some((
                "gitlab.com".to_owned(),
                "group/sub".to_owned(),
                "proj".to_owned()
            ))
        );
        assert_eq!(parse_remote("/just/a/path"), None);
    }
}
