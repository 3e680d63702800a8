//! A recording in the bucket (docs/recording-format.md, "In a bucket"): its parts, each a
//! run of whole sealed chunks named by the byte offset where it starts, and its index (the
//! parts and every chunk's place, written when the recording is whole in the bucket). Read
//! with ranged GETs: a seek fetches the index, the header and the chunks from the keyframe
//! on, not the whole recording. Nothing here is trusted for integrity: every chunk is
//! authenticated where it stands, as from a local file.

use std::io;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::format::ChunkRef;
use super::source::{Remote, Source};
use crate::objects::{Bucket, ObjectError};

/// The name of a recording's part that starts at byte `offset` (sorts in file order).
pub fn part_name(id: &str, offset: u64) -> String {
    format!("{id}/part-{offset:020}")
}

/// The name of a recording's index.
pub fn index_name(id: &str) -> String {
    format!("{id}/index.json")
}

/// A part: where it starts in the recording and how long it is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Part {
    pub offset: u64,
    pub size: u64,
}

/// The index object: the parts, and each chunk as [offset, sealed length, start µs, flags].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    pub version: u32,
    pub id: String,
    pub size: u64,
    pub parts: Vec<Part>,
    pub chunks: Vec<(u64, u32, u64, u8)>,
}

/// The largest index believed (about 40 bytes a chunk: millions of chunks).
const INDEX_MAX: usize = 128 << 20;

fn io_err(e: ObjectError) -> io::Error {
    io::Error::other(e)
}

/// The bucket as the place recordings are read from when their local copy is gone.
pub struct BucketRemote(pub Bucket);

impl Remote for BucketRemote {
    fn open(&self, id: &str) -> io::Result<Box<dyn Source>> {
        Ok(Box::new(BucketSource::open(&self.0, id)?))
    }
}

/// One recording in the bucket, read at positions.
pub struct BucketSource {
    bucket: Bucket,
    id: String,
    parts: Vec<Part>,
    size: u64,
    index: Option<Vec<ChunkRef>>,
    whole: std::sync::atomic::AtomicBool,
    /// The last part fetched whole (reading through a recording).
    cached: Mutex<Option<(usize, Arc<Vec<u8>>)>>,
}

impl BucketSource {
    /// Its index, or without one (a recording still being uploaded) its parts as listed.
    pub fn open(bucket: &Bucket, id: &str) -> io::Result<BucketSource> {
        let (parts, index) = match bucket.get(&bucket.key(&index_name(id))).map_err(io_err)? {
            Some(data) if data.len() <= INDEX_MAX => {
                let ix: Index = serde_json::from_slice(&data).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the bucket's index of recording {id} cannot be read: {e}"),
                    )
                })?;
                let chunks = ix
                    .chunks
                    .iter()
                    .map(|&(offset, len, start, flags)| ChunkRef {
                        offset,
                        len,
                        start,
                        flags,
                    })
                    .collect();
                (ix.parts, Some(chunks))
            }
            Some(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the bucket's index of recording {id} is larger than cordon reads"),
                ))
            }
            None => {
                let prefix = bucket.key(&format!("{id}/part-"));
                let parts = bucket
                    .list(&prefix)
                    .map_err(io_err)?
                    .into_iter()
                    .filter_map(|o| {
                        let offset = o.key.strip_prefix(&prefix)?.parse().ok()?;
                        Some(Part {
                            offset,
                            size: o.size,
                        })
                    })
                    .collect();
                (parts, None)
            }
        };
        if parts.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("recording {id} is neither on this host's disk nor in the bucket"),
            ));
        }
        // The parts must follow each other from byte 0: a gap is a part missing.
        let mut size = 0;
        for p in &parts {
            if p.offset != size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "recording {id} in the bucket lacks the bytes {size}..{}: a part is missing",
                        p.offset
                    ),
                ));
            }
            size += p.size;
        }
        Ok(BucketSource {
            bucket: bucket.clone(),
            id: id.to_string(),
            parts,
            size,
            index,
            whole: Default::default(),
            cached: Mutex::new(None),
        })
    }

    fn part(&self, i: usize) -> io::Result<Arc<Vec<u8>>> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((j, data)) = cached.as_ref() {
            if *j == i {
                return Ok(data.clone());
            }
        }
        let p = &self.parts[i];
        let key = self.bucket.key(&part_name(&self.id, p.offset));
        let data = Arc::new(self.bucket.get_range(&key, 0, p.size).map_err(io_err)?);
        *cached = Some((i, data.clone()));
        Ok(data)
    }
}

impl Source for BucketSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let end = pos + buf.len() as u64;
        if end > self.size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "past the end of the recording in the bucket",
            ));
        }
        let whole = self.whole.load(std::sync::atomic::Ordering::Relaxed);
        for (i, p) in self.parts.iter().enumerate() {
            let (from, to) = (pos.max(p.offset), end.min(p.offset + p.size));
            if from >= to {
                continue;
            }
            let dst = &mut buf[(from - pos) as usize..(to - pos) as usize];
            let cached = {
                let c = self.cached.lock().unwrap_or_else(|e| e.into_inner());
                c.as_ref().filter(|(j, _)| *j == i).map(|(_, d)| d.clone())
            };
            match cached {
                Some(data) => {
                    dst.copy_from_slice(&data[(from - p.offset) as usize..(to - p.offset) as usize])
                }
                None if whole => {
                    let data = self.part(i)?;
                    dst.copy_from_slice(
                        &data[(from - p.offset) as usize..(to - p.offset) as usize],
                    );
                }
                None => {
                    let key = self.bucket.key(&part_name(&self.id, p.offset));
                    let data = self
                        .bucket
                        .get_range(&key, from - p.offset, to - p.offset)
                        .map_err(io_err)?;
                    dst.copy_from_slice(&data);
                }
            }
        }
        Ok(())
    }

    fn index(&self) -> Option<Vec<ChunkRef>> {
        self.index.clone()
    }

    fn whole(&self) {
        self.whole.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
