//! gzip of a scrape body.
//!
//! The body is complete in memory when it is compressed, so a one-shot encoder is all
//! it takes; a streaming compression layer would also change the body's error type,
//! which the metrics layer shares with the application's bodies.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

/// `body`, gzip-compressed.
pub(crate) fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder.write_all(body)?;
    encoder.finish()
}
