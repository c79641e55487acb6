//! What recording tests look at: the files a node left on disk, how random
//! a stored blob is, and `callgate recording decrypt` run as a command.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                files_under(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

/// Shannon entropy in bits per byte.
pub fn entropy(bytes: &[u8]) -> f64 {
    let mut counts = [0u64; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// `callgate recording decrypt ID --out OUT --config CONFIG`: exit code
/// and stderr.
pub fn decrypt_cli(config: &Path, id: &str, out: &Path) -> (i32, String) {
    decrypt_cli_with_env(config, id, out, &[])
}

/// [`decrypt_cli`] with variables the config names (secrets) set.
pub fn decrypt_cli_with_env(
    config: &Path,
    id: &str,
    out: &Path,
    env: &[(&str, &str)],
) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(["recording", "decrypt", id, "--out"])
        .arg(out)
        .arg("--config")
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .expect("run callgate");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
