//! Whole-file decompression of text formats.

use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use tokio::io::{AsyncBufRead, AsyncRead};

use super::Compression;

/// A boxed reader of decompressed bytes.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;

/// Wraps `reader` to decompress `compression` (which must be resolved, not `Auto`).
/// Concatenated gzip members / zstd frames are read as one stream.
pub fn decompress<R>(reader: R, compression: Compression) -> BoxRead
where
    R: AsyncBufRead + Send + Unpin + 'static,
{
    match compression {
        Compression::Gzip => {
            let mut decoder = GzipDecoder::new(reader);
            decoder.multiple_members(true);
            Box::new(decoder)
        }
        Compression::Zstd => {
            let mut decoder = ZstdDecoder::new(reader);
            decoder.multiple_members(true);
            Box::new(decoder)
        }
        Compression::None | Compression::Auto => Box::new(reader),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_compression::tokio::write::{GzipEncoder, ZstdEncoder};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzipEncoder::new(Vec::new());
        enc.write_all(data).await.expect("in memory");
        enc.shutdown().await.expect("in memory");
        enc.into_inner()
    }

    async fn read_all(mut r: BoxRead) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.map(|_| out)
    }

    #[tokio::test]
    async fn concatenated_gzip_members_read_as_one_stream() {
        let mut data = gzip(b"a\n").await;
        data.extend(gzip(b"b\n").await);
        let out = read_all(decompress(std::io::Cursor::new(data), Compression::Gzip)).await.expect("valid gzip");
        assert_eq!(out, b"a\nb\n");
    }

    #[tokio::test]
    async fn zstd_round_trips() {
        let mut enc = ZstdEncoder::new(Vec::new());
        enc.write_all(b"hello\n").await.expect("in memory");
        enc.shutdown().await.expect("in memory");
        let data = enc.into_inner();
        let out = read_all(decompress(std::io::Cursor::new(data), Compression::Zstd)).await.expect("valid zstd");
        assert_eq!(out, b"hello\n");
    }

    #[tokio::test]
    async fn truncated_gzip_is_an_error() {
        let data = gzip(&[b'x'; 10_000]).await;
        let cut = data[..data.len() / 2].to_vec();
        assert!(read_all(decompress(std::io::Cursor::new(cut), Compression::Gzip)).await.is_err());
    }
}
