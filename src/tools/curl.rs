//! curl: text from the internet, a file's size, and a download that can be resumed.
//!
//! From curl/curl's documentation of the options used: `-f` fails (exit 22) on an HTTP
//! answer of 400 or more without writing its body (`docs/cmdline-opts/fail.md`); `-L`
//! follows redirects, as GitHub's release downloads need (a 302 to its object store); `-I`
//! prints the headers of every answer, the last one last (`head.md`); `-C -` resumes a
//! download from the size of the `-o` file with a Range request (`continue-at.md`);
//! `--retry` retries transient failures (`retry.md`).

use std::path::Path;

use crate::environment::Environment;
use crate::error::Result;
use crate::output::Output;
use crate::tools::process::Cmd;

/// curl, as found.
pub struct Curl<'a> {
    pub path: &'a Path,
    pub env: &'a Environment,
    pub out: &'a Output,
}

impl Curl<'_> {
    /// The command that prints the body at `url`.
    pub fn text_cmd(&self, url: &str) -> Cmd {
        Cmd::new(self.path, format!("fetching {url}")).args([
            "-fsSL",
            "--max-time",
            "10",
            "--retry",
            "2",
            url,
        ])
    }

    /// The body at `url`.
    pub fn text(&self, url: &str) -> Result<String> {
        self.text_cmd(url).output(self.env, self.out)
    }

    /// The size of the file at `url`, as the last answer's `content-length` says (none when
    /// the server does not say).
    pub fn size(&self, url: &str) -> Result<Option<u64>> {
        Cmd::new(self.path, format!("asking the size of {url}"))
            .args(["-fsSLI", "--max-time", "10", url])
            .output(self.env, self.out)
            .map(|headers| last_content_length(&headers))
    }

    /// The command that downloads `url` into `part`, continuing from `part`'s size.
    pub fn download_cmd(&self, url: &str, part: &Path) -> Cmd {
        Cmd::new(self.path, format!("downloading {url}"))
            .args([
                "-fsSL",
                "--retry",
                "2",
                "--connect-timeout",
                "10",
                "-C",
                "-",
                "-o",
            ])
            .arg(part)
            .arg(url)
    }

    /// Downloads `url` into `part` (continuing from its size), calling `tick` while it runs.
    pub fn download(&self, url: &str, part: &Path, tick: &mut dyn FnMut()) -> Result<()> {
        self.download_cmd(url, part)
            .output_watching(self.env, self.out, tick)
            .map(drop)
    }
}

/// The `content-length` of the last answer in `headers` (what `curl -I -L` prints: one block
/// per answer, a redirect's first).
pub fn last_content_length(headers: &str) -> Option<u64> {
    let last = headers
        .split("\r\n\r\n")
        .flat_map(|b| b.split("\n\n"))
        .filter(|b| !b.trim().is_empty())
        .last()?;
    last.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_is_the_last_answers() {
        let headers = "HTTP/2 302\r\nlocation: https://objects.example/x\r\ncontent-length: 0\r\n\r\n\
                       HTTP/2 200\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n";
        assert_eq!(last_content_length(headers), Some(1_048_576));
        assert_eq!(last_content_length("HTTP/2 200\r\n\r\n"), None);
        assert_eq!(last_content_length(""), None);
    }
}
