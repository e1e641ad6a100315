//! Reading request bodies under a byte limit, refusing as soon as the limit is passed rather
//! than after buffering whatever the client sends.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// It has more than the limit's bytes (declared or sent).
    #[error("body over {0} bytes")]
    TooLarge(u64),
    /// The connection failed mid-body.
    #[error("reading the body failed: {0}")]
    Read(#[from] axum::Error),
}

/// The declared `Content-Length`, when there is a valid one.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads all of `body`, failing once more than `limit` bytes have arrived (or when
/// `Content-Length` already says so, before reading anything).
pub(crate) async fn read_limited(headers: &HeaderMap, body: Body, limit: u64) -> Result<Bytes, ReadError> {
    let declared = content_length(headers);
    if declared.is_some_and(|n| n > limit) {
        return Err(ReadError::TooLarge(limit));
    }
    // Trust the declared length only as a capacity hint, and never beyond the limit.
    let hint = declared.unwrap_or(0).min(limit).min(1 << 20);
    let mut buffer = BytesMut::with_capacity(usize::try_from(hint).unwrap_or(0));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if (buffer.len() + chunk.len()) as u64 > limit {
            return Err(ReadError::TooLarge(limit));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn chunked(parts: Vec<&'static [u8]>) -> Body {
        let stream = futures_util::stream::iter(parts.into_iter().map(|p| Ok::<_, std::io::Error>(Bytes::from(p))));
        Body::from_stream(stream)
    }

    #[tokio::test]
    async fn stops_at_the_limit_while_streaming() {
        let headers = HeaderMap::new();
        let ok = read_limited(&headers, chunked(vec![b"abc", b"de"]), 5).await.unwrap();
        assert_eq!(&ok[..], b"abcde");
        let err = read_limited(&headers, chunked(vec![b"abc", b"def"]), 5).await.unwrap_err();
        assert!(matches!(err, ReadError::TooLarge(5)));
    }

    #[tokio::test]
    async fn refuses_a_declared_length_over_the_limit_without_reading() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("6"));
        let err = read_limited(&headers, chunked(vec![b"a"]), 5).await.unwrap_err();
        assert!(matches!(err, ReadError::TooLarge(5)));
    }
}
