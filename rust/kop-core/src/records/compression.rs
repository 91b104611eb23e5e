//! Streaming decompression of a batch's records, with a bound on the bytes it may produce.
//!
//! Validation reads compressed records through these readers without ever holding the whole
//! decompressed payload, so a decompression bomb costs bounded memory: gzip and lz4 stream
//! with fixed buffers, zstd keeps at most its window (refused above zstd's default limit),
//! snappy chunks are sized from their headers before anything is allocated. Past `budget`
//! decompressed bytes a reader fails with `Exhausted`.

use std::io::{self, BufRead, BufReader, Read};

/// Codec ids of a v2 batch's attributes.
pub const NONE: i16 = 0;
pub const GZIP: i16 = 1;
pub const SNAPPY: i16 = 2;
pub const LZ4: i16 = 3;
pub const ZSTD: i16 = 4;

/// Largest decompressed payload of one batch kop accepts or reads back (256 MiB).
pub const MAX_UNCOMPRESSED: u64 = 256 * 1024 * 1024;

/// zstd's default window limit (libzstd `ZSTD_WINDOWLOG_LIMIT_DEFAULT` = 27, as Kafka's
/// zstd-jni decoder applies it): frames asking for more are refused.
const MAX_ZSTD_WINDOW: u64 = 1 << 27;

/// Why a payload could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecompressError {
    /// Not a valid stream of the codec (the text says where).
    Corrupt(String),
    /// More than the budget of decompressed bytes.
    Exhausted,
    /// A codec id Kafka does not define (5-7).
    UnknownCodec(i16),
}

impl std::fmt::Display for DecompressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecompressError::Corrupt(why) => write!(f, "cannot decompress: {why}"),
            DecompressError::Exhausted => write!(f, "decompressed size above the limit"),
            DecompressError::UnknownCodec(c) => write!(f, "unknown compression type id {c}"),
        }
    }
}

/// Marker carried inside an `io::Error` when the budget is exceeded.
#[derive(Debug)]
struct BudgetExceeded;

impl std::fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("decompressed size above the limit")
    }
}

impl std::error::Error for BudgetExceeded {}

/// Turns an I/O error from a decompressing reader back into the reason.
pub fn classify(err: &io::Error) -> DecompressError {
    if err
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<BudgetExceeded>().is_some())
    {
        DecompressError::Exhausted
    } else {
        DecompressError::Corrupt(err.to_string())
    }
}

/// Counts the bytes read through it and fails once they pass the budget.
struct Budgeted<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::other(BudgetExceeded));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A buffered reader of the decompressed records of a batch body.
pub fn reader<'a>(
    codec: i16,
    data: &'a [u8],
    budget: u64,
) -> Result<Box<dyn BufRead + 'a>, DecompressError> {
    const BUF: usize = 32 * 1024;
    let bounded = |r: Box<dyn Read + 'a>| -> Box<dyn BufRead + 'a> {
        Box::new(BufReader::with_capacity(
            BUF,
            Budgeted {
                inner: r,
                left: budget,
            },
        ))
    };
    match codec {
        NONE => {
            if data.len() as u64 > budget {
                return Err(DecompressError::Exhausted);
            }
            Ok(Box::new(data))
        }
        GZIP => Ok(bounded(Box::new(flate2::read::GzDecoder::new(data)))),
        SNAPPY => Ok(bounded(Box::new(SnappyReader::new(data, budget)?))),
        LZ4 => Ok(bounded(Box::new(lz4_flex::frame::FrameDecoder::new(data)))),
        ZSTD => {
            check_zstd_window(data)?;
            let decoder = ruzstd::decoding::StreamingDecoder::new(data)
                .map_err(|e| DecompressError::Corrupt(format!("zstd: {e}")))?;
            Ok(bounded(Box::new(decoder)))
        }
        other => Err(DecompressError::UnknownCodec(other)),
    }
}

/// The whole decompressed payload (for readers of stored batches; bounded by `budget`).
pub fn decompress(codec: i16, data: &[u8], budget: u64) -> Result<Vec<u8>, DecompressError> {
    if codec == NONE {
        return Ok(data.to_vec());
    }
    let mut out = Vec::new();
    reader(codec, data, budget)?
        .read_to_end(&mut out)
        .map_err(|e| classify(&e))?;
    Ok(out)
}

/// Refuses a zstd frame whose window (the memory its decoder keeps) is above the limit.
fn check_zstd_window(data: &[u8]) -> Result<(), DecompressError> {
    const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
    let corrupt = |why: &str| DecompressError::Corrupt(format!("zstd: {why}"));
    if data.get(..4) != Some(&MAGIC[..]) {
        return Err(corrupt("not a zstd frame"));
    }
    let descriptor = *data
        .get(4)
        .ok_or_else(|| corrupt("truncated frame header"))?;
    let single_segment = descriptor & 0x20 != 0;
    let window = if single_segment {
        // The window is the content size, in a field of 1, 2, 4 or 8 bytes after the
        // dictionary id (whose size is the low two bits).
        let dict_len = [0usize, 1, 2, 4][usize::from(descriptor & 0x03)];
        let fcs_len = [1usize, 2, 4, 8][usize::from(descriptor >> 6)];
        let at = 5 + dict_len;
        let field = data
            .get(at..at + fcs_len)
            .ok_or_else(|| corrupt("truncated frame header"))?;
        let mut le = [0u8; 8];
        le[..fcs_len].copy_from_slice(field);
        let size = u64::from_le_bytes(le);
        if fcs_len == 2 {
            size + 256
        } else {
            size
        }
    } else {
        let wd = *data
            .get(5)
            .ok_or_else(|| corrupt("truncated frame header"))?;
        let base = 1u64 << (10 + u32::from(wd >> 3));
        base + (base / 8) * u64::from(wd & 0x07)
    };
    if window > MAX_ZSTD_WINDOW {
        return Err(corrupt("frame window above the 128 MiB limit"));
    }
    Ok(())
}

/// Snappy as Kafka clients send it: the xerial framing of Java clients (a 16-byte header,
/// then length-prefixed raw-snappy chunks), or one raw-snappy block (librdkafka may send
/// that). Each chunk's decompressed length is read from its header and checked against the
/// budget before it is decompressed.
struct SnappyReader<'a> {
    rest: &'a [u8],
    framed: bool,
    chunk: Vec<u8>,
    pos: usize,
    left: u64,
    decoder: snap::raw::Decoder,
}

const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER: usize = 16;

impl<'a> SnappyReader<'a> {
    fn new(data: &'a [u8], budget: u64) -> Result<SnappyReader<'a>, DecompressError> {
        let framed = data.starts_with(XERIAL_MAGIC);
        let rest = if framed {
            data.get(XERIAL_HEADER..)
                .ok_or_else(|| DecompressError::Corrupt("snappy: truncated header".into()))?
        } else {
            data
        };
        Ok(SnappyReader {
            rest,
            framed,
            chunk: Vec::new(),
            pos: 0,
            left: budget,
            decoder: snap::raw::Decoder::new(),
        })
    }

    /// Decompresses the next chunk into `self.chunk`; false at the end of the input.
    fn next_chunk(&mut self) -> io::Result<bool> {
        let corrupt = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
        if self.rest.is_empty() {
            return Ok(false);
        }
        let block = if self.framed {
            let len_bytes = self
                .rest
                .get(..4)
                .ok_or_else(|| corrupt("snappy: truncated chunk length".into()))?;
            let len = u32::from_be_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
            let block = self.rest[4..]
                .get(..len)
                .ok_or_else(|| corrupt("snappy: truncated chunk".into()))?;
            self.rest = &self.rest[4 + len..];
            block
        } else {
            std::mem::take(&mut self.rest)
        };
        let size = snap::raw::decompress_len(block).map_err(|e| corrupt(format!("snappy: {e}")))?;
        if size as u64 > self.left {
            return Err(io::Error::other(BudgetExceeded));
        }
        self.left -= size as u64;
        self.chunk.resize(size, 0);
        let n = self
            .decoder
            .decompress(block, &mut self.chunk)
            .map_err(|e| corrupt(format!("snappy: {e}")))?;
        self.chunk.truncate(n);
        self.pos = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        let encoded = [
            (GZIP, gzip(&data)),
            (
                SNAPPY,
                snap::raw::Encoder::new().compress_vec(&data).unwrap(),
            ),
            (LZ4, {
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(&data).unwrap();
                e.finish().unwrap()
            }),
            (
                ZSTD,
                ruzstd::encoding::compress_to_vec(
                    &data[..],
                    ruzstd::encoding::CompressionLevel::Fastest,
                ),
            ),
        ];
        for (codec, bytes) in encoded {
            assert_eq!(
                decompress(codec, &bytes, MAX_UNCOMPRESSED).unwrap(),
                data,
                "codec {codec}"
            );
            // One byte short of the payload's size: refused, not truncated silently.
            assert_eq!(
                decompress(codec, &bytes, data.len() as u64 - 1),
                Err(DecompressError::Exhausted),
                "codec {codec}"
            );
        }
    }

    #[test]
    fn a_bomb_stops_at_the_budget() {
        // 64 MiB of zeros in well under 1 MiB of gzip: refused at a 1 MiB budget.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            e.write_all(&zeros).unwrap();
        }
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        assert_eq!(
            decompress(GZIP, &bomb, 1 << 20),
            Err(DecompressError::Exhausted)
        );
    }

    #[test]
    fn zstd_window_above_the_limit_is_refused() {
        // Magic, descriptor (no single segment), window descriptor exponent 31-10 = 21 -> 2 GiB.
        let frame = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 21 << 3, 0, 0, 0];
        assert!(matches!(
            reader(ZSTD, &frame, MAX_UNCOMPRESSED),
            Err(DecompressError::Corrupt(_))
        ));
    }

    #[test]
    fn garbage_is_corrupt_for_every_codec() {
        for codec in [GZIP, SNAPPY, LZ4, ZSTD] {
            assert!(
                matches!(
                    decompress(codec, b"not compressed at all", MAX_UNCOMPRESSED),
                    Err(DecompressError::Corrupt(_))
                ),
                "codec {codec}"
            );
        }
        assert_eq!(
            decompress(5, b"x", MAX_UNCOMPRESSED),
            Err(DecompressError::UnknownCodec(5))
        );
    }
}
