//! Shard writers: Parquet (snappy) and JSON Lines, one row per kept file.
//!
//! Both formats carry the same columns: `content`, `path`, `repo_name`,
//! `language`, `license`, `license_source`, `stars`, `forks`, `size_bytes`,
//! `content_hash`, the four `pii_*` counts and `flags` (comma-separated).
//! The Parquet writer buffers at most `output.row_group_bytes` of content
//! before writing a row group, which bounds its memory. Files are written
//! under a temporary name and renamed when complete.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::record::Meta;

/// The Parquet schema of output shards.
pub const PARQUET_SCHEMA: &str = "
message curated {
  REQUIRED BYTE_ARRAY content (UTF8);
  REQUIRED BYTE_ARRAY path (UTF8);
  OPTIONAL BYTE_ARRAY repo_name (UTF8);
  OPTIONAL BYTE_ARRAY language (UTF8);
  OPTIONAL BYTE_ARRAY license (UTF8);
  OPTIONAL BYTE_ARRAY license_source (UTF8);
  OPTIONAL INT64 stars;
  OPTIONAL INT64 forks;
  REQUIRED INT64 size_bytes;
  REQUIRED BYTE_ARRAY content_hash (UTF8);
  REQUIRED INT32 pii_emails;
  REQUIRED INT32 pii_ip_addresses;
  REQUIRED INT32 pii_keys;
  REQUIRED INT32 pii_passwords;
  REQUIRED BYTE_ARRAY flags (UTF8);
}
";

/// One output row in JSON Lines.
#[derive(Serialize)]
struct JsonRow<'a> {
    content: &'a str,
    path: &'a str,
    repo_name: Option<&'a str>,
    language: Option<&'a str>,
    license: Option<&'a str>,
    license_source: Option<&'a str>,
    stars: Option<u64>,
    forks: Option<u64>,
    size_bytes: u64,
    content_hash: &'a str,
    pii_emails: u32,
    pii_ip_addresses: u32,
    pii_keys: u32,
    pii_passwords: u32,
    flags: String,
}

/// Writes one shard in every enabled format.
pub struct ShardWriter {
    parquet: Option<ParquetWriter>,
    jsonl: Option<(BufWriter<File>, PathBuf, PathBuf)>,
}

impl ShardWriter {
    /// Opens temporary files next to `final_stem` (`.../part-000001`).
    pub fn create(
        final_stem: &Path,
        parquet: bool,
        jsonl: bool,
        row_group_bytes: u64,
    ) -> Result<ShardWriter> {
        let pq = if parquet {
            Some(ParquetWriter::create(
                &with_ext(final_stem, "parquet"),
                row_group_bytes,
            )?)
        } else {
            None
        };
        let js = if jsonl {
            let final_path = with_ext(final_stem, "jsonl");
            let tmp = tmp_path(&final_path);
            let f = File::create(&tmp).map_err(Error::io(&tmp))?;
            Some((BufWriter::with_capacity(1 << 20, f), tmp, final_path))
        } else {
            None
        };
        Ok(ShardWriter {
            parquet: pq,
            jsonl: js,
        })
    }

    /// Appends a row.
    pub fn write(&mut self, meta: Meta, content: String) -> Result<()> {
        if let Some((w, tmp, _)) = &mut self.jsonl {
            let row = JsonRow {
                content: &content,
                path: &meta.path,
                repo_name: meta.repo.as_deref(),
                language: meta.language.as_deref(),
                license: meta.license.as_deref(),
                license_source: meta.license_source.as_deref(),
                stars: meta.stars,
                forks: meta.forks,
                size_bytes: meta.size_bytes,
                content_hash: &meta.content_hash,
                pii_emails: meta.pii.emails,
                pii_ip_addresses: meta.pii.ip_addresses,
                pii_keys: meta.pii.keys,
                pii_passwords: meta.pii.passwords,
                flags: meta.flags.join(","),
            };
            serde_json::to_writer(&mut *w, &row).map_err(|e| Error::io(tmp.as_path())(e.into()))?;
            w.write_all(b"\n").map_err(Error::io(tmp.as_path()))?;
        }
        if let Some(p) = &mut self.parquet {
            p.write(meta, content)?;
        }
        Ok(())
    }

    /// Flushes, closes and renames the files into place.
    pub fn finish(self) -> Result<()> {
        if let Some(p) = self.parquet {
            p.finish()?;
        }
        if let Some((mut w, tmp, final_path)) = self.jsonl {
            w.flush().map_err(Error::io(&tmp))?;
            let f = w
                .into_inner()
                .map_err(|e| Error::io(&tmp)(e.into_error()))?;
            f.sync_all().map_err(Error::io(&tmp))?;
            std::fs::rename(&tmp, &final_path).map_err(Error::io(&final_path))?;
        }
        Ok(())
    }
}

/// `stem` with `.ext` appended.
pub fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn tmp_path(final_path: &Path) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!(".{name}.tmp"))
}

struct ParquetWriter {
    writer: SerializedFileWriter<File>,
    rows: Vec<(Meta, String)>,
    buffered: u64,
    row_group_bytes: u64,
    tmp: PathBuf,
    final_path: PathBuf,
}

impl ParquetWriter {
    fn create(final_path: &Path, row_group_bytes: u64) -> Result<ParquetWriter> {
        let tmp = tmp_path(final_path);
        let schema = Arc::new(parse_message_type(PARQUET_SCHEMA).map_err(Error::parquet(&tmp))?);
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_dictionary_enabled(false)
                .build(),
        );
        let f = File::create(&tmp).map_err(Error::io(&tmp))?;
        let writer = SerializedFileWriter::new(f, schema, props).map_err(Error::parquet(&tmp))?;
        Ok(ParquetWriter {
            writer,
            rows: Vec::new(),
            buffered: 0,
            row_group_bytes,
            tmp,
            final_path: final_path.to_path_buf(),
        })
    }

    fn write(&mut self, meta: Meta, content: String) -> Result<()> {
        self.buffered += content.len() as u64;
        self.rows.push((meta, content));
        if self.buffered >= self.row_group_bytes {
            self.flush_row_group()?;
        }
        Ok(())
    }

    fn flush_row_group(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        self.buffered = 0;
        let tmp = self.tmp.clone();
        let err = Error::parquet;
        let mut rg = self.writer.next_row_group().map_err(err(&tmp))?;
        let mut column_idx = 0;
        while let Some(mut col) = rg.next_column().map_err(err(&tmp))? {
            match column_idx {
                // REQUIRED strings.
                0 | 1 | 9 | 14 => {
                    let values: Vec<ByteArray> = rows
                        .iter()
                        .map(|(m, c)| {
                            let s: &str = match column_idx {
                                0 => c,
                                1 => &m.path,
                                9 => &m.content_hash,
                                _ => return ByteArray::from(m.flags.join(",").into_bytes()),
                            };
                            ByteArray::from(s.as_bytes().to_vec())
                        })
                        .collect();
                    col.typed::<ByteArrayType>()
                        .write_batch(&values, None, None)
                        .map_err(err(&tmp))?;
                }
                // OPTIONAL strings.
                2..=5 => {
                    let opt: Vec<Option<&str>> = rows
                        .iter()
                        .map(|(m, _)| match column_idx {
                            2 => m.repo.as_deref(),
                            3 => m.language.as_deref(),
                            4 => m.license.as_deref(),
                            _ => m.license_source.as_deref(),
                        })
                        .collect();
                    let defs: Vec<i16> = opt.iter().map(|o| o.is_some() as i16).collect();
                    let values: Vec<ByteArray> = opt
                        .iter()
                        .flatten()
                        .map(|s| ByteArray::from(s.as_bytes().to_vec()))
                        .collect();
                    col.typed::<ByteArrayType>()
                        .write_batch(&values, Some(&defs), None)
                        .map_err(err(&tmp))?;
                }
                // OPTIONAL INT64.
                6 | 7 => {
                    let opt: Vec<Option<u64>> = rows
                        .iter()
                        .map(|(m, _)| if column_idx == 6 { m.stars } else { m.forks })
                        .collect();
                    let defs: Vec<i16> = opt.iter().map(|o| o.is_some() as i16).collect();
                    let values: Vec<i64> = opt
                        .iter()
                        .flatten()
                        .map(|&v| v.min(i64::MAX as u64) as i64)
                        .collect();
                    col.typed::<Int64Type>()
                        .write_batch(&values, Some(&defs), None)
                        .map_err(err(&tmp))?;
                }
                8 => {
                    let values: Vec<i64> = rows.iter().map(|(m, _)| m.size_bytes as i64).collect();
                    col.typed::<Int64Type>()
                        .write_batch(&values, None, None)
                        .map_err(err(&tmp))?;
                }
                10..=13 => {
                    let values: Vec<i32> = rows
                        .iter()
                        .map(|(m, _)| {
                            (match column_idx {
                                10 => m.pii.emails,
                                11 => m.pii.ip_addresses,
                                12 => m.pii.keys,
                                _ => m.pii.passwords,
                            }) as i32
                        })
                        .collect();
                    col.typed::<Int32Type>()
                        .write_batch(&values, None, None)
                        .map_err(err(&tmp))?;
                }
                _ => unreachable!("the schema has 15 columns"),
            }
            col.close().map_err(err(&tmp))?;
            column_idx += 1;
        }
        rg.close().map_err(err(&tmp))?;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.flush_row_group()?;
        let tmp = self.tmp.clone();
        let f = self.writer.into_inner().map_err(Error::parquet(&tmp))?;
        f.sync_all().map_err(Error::io(&tmp))?;
        std::fs::rename(&tmp, &self.final_path).map_err(Error::io(&self.final_path))?;
        Ok(())
    }
}

/// Reads back an output Parquet file as (path, content) pairs (for tests and tools).
pub fn read_parquet_rows(path: &Path) -> Result<Vec<(String, String)>> {
    use parquet::file::reader::SerializedFileReader;
    use parquet::record::Field;
    let f = File::open(path).map_err(Error::io(path))?;
    let reader = SerializedFileReader::new(f).map_err(Error::parquet(path))?;
    let mut out = Vec::new();
    for row in parquet::record::reader::RowIter::from_file_into(Box::new(reader)) {
        let row = row.map_err(Error::parquet(path))?;
        let mut p = String::new();
        let mut c = String::new();
        for (name, field) in row.get_column_iter() {
            if let Field::Str(s) = field {
                match name.as_str() {
                    "path" => p = s.clone(),
                    "content" => c = s.clone(),
                    _ => {}
                }
            }
        }
        out.push((p, c));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_and_jsonl_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("part-000000");
        // A tiny row-group budget forces several row groups.
        let mut w = ShardWriter::create(&stem, true, true, 10).unwrap();
        for i in 0..5 {
            let meta = Meta {
                path: format!("f{i}.py"),
                repo: (i % 2 == 0).then(|| "r".to_string()),
                language: Some("Python".into()),
                stars: (i == 3).then_some(7),
                size_bytes: 12,
                content_hash: "ab".into(),
                flags: vec!["a".into(), "b".into()],
                ..Default::default()
            };
            w.write(meta, format!("print({i})\n")).unwrap();
        }
        w.finish().unwrap();
        let rows = read_parquet_rows(&with_ext(&stem, "parquet")).unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[3], ("f3.py".to_string(), "print(3)\n".to_string()));
        let jsonl = std::fs::read_to_string(with_ext(&stem, "jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[3]["stars"], 7);
        assert_eq!(lines[1]["repo_name"], serde_json::Value::Null);
        assert_eq!(lines[0]["flags"], "a,b");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
