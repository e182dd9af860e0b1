//! `--privileged`, `--cap-add`, `--cap-drop` and `--security-opt` of `create` and `run`.

use anyhow::Context;
use strata_runtime::security::Security;

/// The container's security settings from its flags. A `seccomp=FILE` is read here, and its
/// JSON kept (compacted) in place of the path, as Docker's CLI sends it.
pub(super) fn security(
    privileged: bool,
    cap_add: &[String],
    cap_drop: &[String],
    opts: &[String],
) -> anyhow::Result<Security> {
    let mut security = Security {
        privileged,
        cap_add: cap_add.to_vec(),
        cap_drop: cap_drop.to_vec(),
        ..Security::default()
    };
    for opt in opts {
        let opt = match opt.split_once('=') {
            Some(("seccomp", file)) if !matches!(file, "unconfined" | "builtin") => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("opening seccomp profile ({file}) failed"))?;
                let json: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("decoding seccomp profile ({file}) failed"))?;
                format!("seccomp={json}")
            }
            _ => opt.clone(),
        };
        security.add_opt(&opt)?;
    }
    // Bad capability names, profiles and options fail here, before any pull or record.
    security.validate()?;
    Ok(security)
}
