//! Reading a batch request's body within limits: the compressed size is capped while
//! the body streams in (never buffered whole before the check), and decompression reads
//! at most one byte past the decompressed limit, so a zstd or gzip bomb is refused with
//! 413 before it is inflated.

use std::borrow::Cow;
use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use jejak_domain::{BATCH_MEDIA_TYPE, WireBatch};

/// How the body is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Zstd,
    Gzip,
}

/// Why a body could not become a batch.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the decompressed body is larger than {limit} bytes")]
    InflatesTooLarge { limit: usize },
    #[error("Content-Type '{0}' is not accepted; send {BATCH_MEDIA_TYPE} (or application/json)")]
    MediaType(String),
    #[error("Content-Encoding '{0}' is not supported; use zstd, gzip or none")]
    Encoding(String),
    #[error("the request body could not be read: {0}")]
    Read(String),
    #[error("the request body did not arrive in time; send it again")]
    Timeout,
    #[error("the body could not be decompressed as {encoding}: {detail}")]
    Corrupt {
        encoding: &'static str,
        detail: String,
    },
    #[error("the body is not valid JSON: {0}")]
    Syntax(String),
    #[error("the body is not a valid batch: {0}")]
    Invalid(String),
}

/// Checks the declared media type: the batch type or plain JSON, parameters ignored.
pub(crate) fn check_media_type(headers: &HeaderMap) -> Result<(), BodyError> {
    let raw = headers
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == BATCH_MEDIA_TYPE || essence == "application/json" {
        Ok(())
    } else {
        Err(BodyError::MediaType(raw))
    }
}

/// The declared content encoding.
pub(crate) fn encoding(headers: &HeaderMap) -> Result<Encoding, BodyError> {
    let Some(value) = headers.get(CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let raw = String::from_utf8_lossy(value.as_bytes()).into_owned();
    match raw.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "zstd" => Ok(Encoding::Zstd),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        _ => Err(BodyError::Encoding(raw)),
    }
}

/// Reads the body, refusing it as soon as it is known to exceed `limit` bytes: from
/// `Content-Length` before reading anything, else while it streams in.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(declared) = declared.filter(|n| *n > limit as u64) {
        // A client that is still sending its body when the connection closes sees a
        // broken pipe instead of the 413 that says what is wrong. A body of moderate
        // size is therefore read and thrown away first, for a bounded time; a huge one
        // is refused at once.
        if declared <= (limit as u64).saturating_mul(DRAIN_FACTOR) {
            let _ = tokio::time::timeout(DRAIN_TIME, discard(body)).await;
        }
        return Err(BodyError::TooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyError::TooLarge { limit })
        }
        Err(e) if super::serve::is_body_timeout(e.as_ref()) => Err(BodyError::Timeout),
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}

/// Bodies up to this many times the limit are read and discarded before the 413.
const DRAIN_FACTOR: u64 = 4;
/// How long discarding an oversized body may take.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(3);

async fn discard(mut body: Body) {
    while let Some(Ok(_)) = body.frame().await {}
}

/// The smallest zstd window (as a power of two) that can hold `limit` bytes, between
/// 1 MiB and 128 MiB: a frame that asks for more memory than the whole allowed output
/// is refused instead of being given it.
fn zstd_window_log(limit: usize) -> u32 {
    let bits = usize::BITS - limit.saturating_sub(1).leading_zeros();
    bits.clamp(20, 27)
}

fn read_bounded(
    mut reader: impl Read,
    limit: usize,
    error: impl Fn(std::io::Error) -> BodyError,
) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    // One byte past the limit tells "too large" from "exactly at the limit".
    reader
        .by_ref()
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(error)?;
    if out.len() > limit {
        return Err(BodyError::InflatesTooLarge { limit });
    }
    Ok(out)
}

/// Decompresses `body`, producing at most `limit` bytes.
pub(crate) fn inflate(
    body: &[u8],
    encoding: Encoding,
    limit: usize,
) -> Result<Cow<'_, [u8]>, BodyError> {
    match encoding {
        Encoding::Identity => {
            if body.len() > limit {
                return Err(BodyError::InflatesTooLarge { limit });
            }
            Ok(Cow::Borrowed(body))
        }
        Encoding::Zstd => {
            // A frame that declares more content than allowed is refused before a byte is
            // inflated (a bomb usually says how big it is).
            if let Ok(Some(declared)) = zstd::zstd_safe::get_frame_content_size(body)
                && declared > limit as u64
            {
                return Err(BodyError::InflatesTooLarge { limit });
            }
            let corrupt = |e: std::io::Error| {
                // A frame whose window is larger than the whole allowed output is refused
                // by the decoder (window_log_max): that is a size refusal, not garbage.
                if e.to_string().contains("too much memory") {
                    BodyError::InflatesTooLarge { limit }
                } else {
                    BodyError::Corrupt {
                        encoding: "zstd",
                        detail: e.to_string(),
                    }
                }
            };
            let mut decoder = zstd::stream::read::Decoder::new(body).map_err(corrupt)?;
            decoder
                .window_log_max(zstd_window_log(limit))
                .map_err(corrupt)?;
            read_bounded(decoder, limit, corrupt).map(Cow::Owned)
        }
        Encoding::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(body), limit, |e| {
            BodyError::Corrupt {
                encoding: "gzip",
                detail: e.to_string(),
            }
        })
        .map(Cow::Owned),
    }
}

/// Parses a batch document. Text that is not JSON at all is a syntax error (400); JSON
/// of the wrong shape (wrong types, unknown enum values, unknown or missing fields) is
/// an invalid batch (422).
pub(crate) fn parse(json: &[u8]) -> Result<WireBatch, BodyError> {
    serde_json::from_slice::<WireBatch>(json).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => BodyError::Invalid(e.to_string()),
        _ => BodyError::Syntax(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn bombs_stop_at_the_limit() {
        let zeros = vec![0u8; 8 << 20];
        let packed = zstd::encode_all(zeros.as_slice(), 3).unwrap();
        assert!(packed.len() < 4096);
        assert!(matches!(
            inflate(&packed, Encoding::Zstd, 1 << 20),
            Err(BodyError::InflatesTooLarge { .. })
        ));
        assert_eq!(
            inflate(&packed, Encoding::Zstd, 8 << 20).unwrap().len(),
            8 << 20
        );

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&zeros).unwrap();
        let packed = gz.finish().unwrap();
        assert!(matches!(
            inflate(&packed, Encoding::Gzip, 1 << 20),
            Err(BodyError::InflatesTooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_a_corrupt_stream() {
        assert!(matches!(
            inflate(b"not zstd at all", Encoding::Zstd, 1024),
            Err(BodyError::Corrupt { .. })
        ));
        assert!(matches!(
            inflate(b"not gzip at all", Encoding::Gzip, 1024),
            Err(BodyError::Corrupt { .. })
        ));
    }

    #[test]
    fn window_follows_the_limit() {
        assert_eq!(zstd_window_log(16 << 20), 24);
        assert_eq!(zstd_window_log(1), 20);
        assert_eq!(zstd_window_log(usize::MAX), 27);
    }

    #[test]
    fn syntax_and_shape_errors_differ() {
        assert!(matches!(
            parse(b"{\"wire_version\": 1,"),
            Err(BodyError::Syntax(_))
        ));
        assert!(matches!(parse(b"not json"), Err(BodyError::Syntax(_))));
        assert!(matches!(
            parse(b"{\"wire_version\": \"one\"}"),
            Err(BodyError::Invalid(_))
        ));
        assert!(matches!(parse(b"[]"), Err(BodyError::Invalid(_))));
    }
}
