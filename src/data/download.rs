//! Fetching a missing part of MNIST or Fashion-MNIST: its two IDX `.gz` files, from the
//! mirrors torchvision uses, saved as they come into the data set's directory, where
//! the IDX reader then reads and checks them like any local file.

use super::idx;
use super::images::{Part, RawImages};
use crate::spec::DatasetSpec;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Duration;

/// Replaces the mirrors' base URL: the files are then fetched from
/// `$SMOOTHLAB_DOWNLOAD_URL/<data set>/<file>.gz` (a local mirror, or a test's server).
pub const BASE_URL_VAR: &str = "SMOOTHLAB_DOWNLOAD_URL";

/// No file of either data set is larger than 30 MB (Fashion-MNIST's training images:
/// 26.4 MB); a server sending more is not serving these files.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// The base URL of `spec`'s files (without the trailing slash).
fn base_url(spec: &DatasetSpec) -> Result<String> {
    if let Ok(base) = std::env::var(BASE_URL_VAR) {
        return Ok(format!("{}/{}", base.trim_end_matches('/'), spec.name()));
    }
    Ok(match spec {
        DatasetSpec::Mnist(_) => "https://ossci-datasets.s3.amazonaws.com/mnist".into(),
        DatasetSpec::FashionMnist(_) => {
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com".into()
        }
        _ => bail!(
            "smoothlab does not download {}: put the official binary archive's contents in place",
            spec.name()
        ),
    })
}

/// Downloads `part`'s images and labels, checks them with `read` (the reader a local
/// file gets) and moves them into `dir` (created if need be). They are downloaded into a
/// scratch directory inside `dir` and renamed into place only once they read correctly,
/// so that an interrupted or bad download leaves nothing a later run would trip over.
/// When `dir` cannot be written they are read from a scratch directory elsewhere, with a
/// warning: the run goes on, and the next one downloads them again.
pub fn fetch(
    spec: &DatasetSpec,
    dir: &Path,
    part: Part,
    read: impl FnOnce(&Path) -> Result<RawImages>,
) -> Result<RawImages> {
    let base = base_url(spec)?;
    // A directory made for a download that fails is taken away again: a failed run
    // leaves the file system as it found it.
    let created = !dir.exists();
    let fetched = fetch_into(spec, dir, part, &base, read);
    if fetched.is_err() && created {
        let _ = std::fs::remove_dir(dir);
    }
    fetched
}

fn fetch_into(
    spec: &DatasetSpec,
    dir: &Path,
    part: Part,
    base: &str,
    read: impl FnOnce(&Path) -> Result<RawImages>,
) -> Result<RawImages> {
    let scratch = || {
        tempfile::Builder::new()
            .prefix(".download-")
            .tempdir_in(dir)
    };
    let (scratch, keep) = match std::fs::create_dir_all(dir).and_then(|()| scratch()) {
        Ok(scratch) => (scratch, true),
        Err(e) => {
            tracing::warn!(
                "{} cannot be written ({e}); the downloaded {} files are used without a local copy",
                dir.display(),
                spec.name()
            );
            (
                tempfile::tempdir().context("creating a scratch directory")?,
                false,
            )
        }
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(120)))
        .build()
        .into();
    let (images, labels) = idx::mnist_file_names(part);
    let files = [format!("{images}.gz"), format!("{labels}.gz")];
    for file in &files {
        let url = format!("{base}/{file}");
        tracing::info!("downloading {url}");
        download(&agent, &url, &scratch.path().join(file))
            .with_context(|| format!("downloading {url}"))?;
    }
    let raw = read(scratch.path())
        .with_context(|| format!("checking the {} files downloaded from {base}", spec.name()))?;
    if keep {
        for file in &files {
            let to = dir.join(file);
            std::fs::rename(scratch.path().join(file), &to)
                .with_context(|| format!("moving the downloaded file to {}", to.display()))?;
        }
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
        tracing::info!(
            "saved the downloaded {} files in {}",
            spec.name(),
            dir.display()
        );
    }
    Ok(raw)
}

/// One file's body into `path`, at most [`MAX_FILE_BYTES`] of it.
fn download(agent: &ureq::Agent, url: &str, path: &Path) -> Result<()> {
    let mut response = agent.get(url).call()?;
    let mut body = response
        .body_mut()
        .with_config()
        .limit(MAX_FILE_BYTES)
        .reader();
    let mut out = std::fs::File::create(path)?;
    std::io::copy(&mut body, &mut out)?;
    out.sync_all()?;
    Ok(())
}
