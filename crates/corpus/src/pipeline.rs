//! `duet corpus build` and `duet corpus merge`: the streaming, parallel pipeline.
//!
//! 1) A reader thread walks the inputs in sorted order and cuts them into batches of raw
//!    documents, each with a sequence number. 2) Worker threads extract, clean, identify,
//!    filter, decontaminate, redact and sign each batch. 3) The calling thread puts batches back
//!    in order, counts drops, and stages kept documents with their de-duplication keys. A
//!    permit per batch in flight bounds memory. 4) De-duplication is resolved on disk.
//!    5) The staged documents are read again, duplicates dropped, the rest split and written to
//!    shards; the manifest is written last, so a directory without one is unfinished.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::ProgressBar;

use crate::config::Config;
use crate::decontam::Decontaminator;
use crate::dedup::{DedupIndex, MinHasher, SignatureReader, SignatureWriter, Verdict, exact_key};
use crate::error::IoContext;
use crate::manifest::{Manifest, Reference, file_sha256, write_atomic};
use crate::pii::Redactor;
use crate::read::{self, InputFile, InputSummary, RawDoc, RawItem};
use crate::report::{Cluster, Report};
use crate::shard::{ShardInfo, ShardWriter, SplitReader, check_corpus};
use crate::split::{self, Split};
use crate::text::words;
use crate::{Document, Error, Result, clean, filter};

/// Raw documents per batch handed to a worker.
const BATCH: usize = 256;
/// Largest duplicate clusters listed in the report.
const CLUSTERS_IN_REPORT: usize = 10;

/// One deterministic part of the inputs: files whose sorted position is `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    /// This part, from 0.
    pub index: usize,
    /// Number of parts.
    pub count: usize,
}

impl std::str::FromStr for ShardSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Config(format!("--shard expects K/N with 0 <= K < N, found {s:?}"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

/// What `build` reads and where it writes.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Files and directories to read.
    pub inputs: Vec<PathBuf>,
    /// The corpus directory to create.
    pub out: PathBuf,
    /// Replace `out` if it exists.
    pub force: bool,
    /// Fail on the first unreadable file or malformed record instead of counting it.
    pub strict: bool,
    /// Process one part of the inputs.
    pub shard: Option<ShardSpec>,
    /// Earlier corpora whose documents count as already seen.
    pub dedup_against: Vec<PathBuf>,
    /// Evaluation sets to decontaminate against (any readable input).
    pub decontaminate: Vec<PathBuf>,
    /// Progress display (hidden in tests).
    pub progress: ProgressBar,
}

/// What a worker made of one raw document.
enum Processed {
    Dropped {
        id: String,
        reason: &'static str,
        text: String,
        detail: String,
        lang: Option<&'static str>,
    },
    Kept {
        doc: Document,
        exact: u64,
        sig: Vec<u32>,
        redactions: BTreeMap<&'static str, u64>,
    },
}

/// A unit on the ordered stream: documents, or the end of a file.
enum Unit {
    Items(Vec<RawItem>),
    FileDone(std::result::Result<InputSummary, String>),
}

enum Done {
    Items(Vec<Processed>),
    FileDone(std::result::Result<InputSummary, String>),
}

/// Everything a worker needs, shared read-only.
struct Context {
    cfg: Config,
    redactor: Option<Redactor>,
    decontam: Decontaminator,
    hasher: MinHasher,
}

impl Context {
    fn process(&self, item: RawItem) -> Processed {
        let raw = match item {
            RawItem::Doc(d) => d,
            RawItem::Malformed { id, line, message } => {
                return Processed::Dropped {
                    id,
                    reason: "malformed",
                    text: String::new(),
                    detail: format!("line {line}: {message}"),
                    lang: None,
                };
            }
        };
        let RawDoc {
            id,
            text,
            html,
            mut meta,
            lossy: _,
        } = raw;
        let text = if html {
            let e = read::html::extract(&text);
            if let Some(t) = e.title {
                // A title the reader found (an e-book's) wins over the page's.
                meta.entry("title").or_insert(t.into());
            }
            e.text
        } else {
            text
        };
        let text = clean::clean(&text, &self.cfg.clean);
        if text.trim().is_empty() {
            return Processed::Dropped {
                id,
                reason: "empty",
                text,
                detail: String::new(),
                lang: None,
            };
        }
        let w = words(&text);
        let verdict = filter::apply(&text, &w, &self.cfg.filters);
        let lang = verdict.lang.map(|g| g.code);
        if let Some(reason) = verdict.reason {
            let detail = match verdict.lang {
                Some(g) if reason.starts_with("language") => {
                    format!("{} ({:.2})", g.code, g.confidence)
                }
                _ => String::new(),
            };
            return Processed::Dropped {
                id,
                reason,
                text,
                detail,
                lang,
            };
        }
        let guess = verdict.lang.unwrap_or(filter::LangGuess {
            code: "und",
            confidence: 0.0,
        });
        drop(w);
        if self.decontam.contaminated(&text) {
            return Processed::Dropped {
                id,
                reason: "decontaminated",
                text,
                detail: String::new(),
                lang: Some(guess.code),
            };
        }
        let (text, counts) = match &self.redactor {
            Some(r) => r.redact(&text),
            None => (text, BTreeMap::new()),
        };
        let redactions: BTreeMap<&'static str, u64> =
            counts.into_iter().map(|(k, v)| (k.name(), v)).collect();
        let exact = exact_key(&text);
        let sig = if self.cfg.dedup.near {
            self.hasher.signature(&text)
        } else {
            Vec::new()
        };
        meta.insert(
            "lang_score".into(),
            ((guess.confidence * 1000.0).round() / 1000.0).into(),
        );
        let source = id_source(&id);
        let doc = Document {
            id,
            text,
            source,
            lang: guess.code.to_owned(),
            meta,
        };
        Processed::Kept {
            doc,
            exact,
            sig,
            redactions,
        }
    }
}

/// The source file named by an id `<source>#<n>` (ids from JSONL fields have none).
fn id_source(id: &str) -> String {
    id.rsplit_once('#')
        .map_or_else(|| id.to_owned(), |(s, _)| s.to_owned())
}

/// Documents kept so far, staged on disk beside their de-duplication rows.
struct Stage {
    dir: PathBuf,
    docs: zstd::stream::write::Encoder<'static, BufWriter<File>>,
    docs_path: PathBuf,
    dedup: DedupIndex,
}

impl Stage {
    fn create(out: &Path, cfg: &Config) -> Result<Self> {
        let dir = out.join(".staging");
        std::fs::create_dir_all(&dir).at(&dir)?;
        let docs_path = dir.join("docs.jsonl.zst");
        let f = BufWriter::with_capacity(1 << 16, File::create(&docs_path).at(&docs_path)?);
        let docs = zstd::stream::write::Encoder::new(f, 1).at(&docs_path)?;
        let dedup = DedupIndex::create(&dir.join("dedup"), &cfg.dedup)?;
        Ok(Self {
            dir,
            docs,
            docs_path,
            dedup,
        })
    }

    fn push(&mut self, doc: &Document, exact: u64, sig: &[u32]) -> Result<()> {
        self.dedup.add(exact, sig)?;
        serde_json::to_writer(&mut self.docs, doc)?;
        self.docs.write_all(b"\n").at(&self.docs_path)
    }
}

/// Prepares the output directory: refuses an existing one without `force`.
fn prepare_out(out: &Path, force: bool) -> Result<()> {
    if out.exists() {
        let empty = out.is_dir() && std::fs::read_dir(out).at(out)?.next().is_none();
        if !empty {
            if !force {
                return Err(Error::OutputExists(out.to_path_buf()));
            }
            if out.is_dir() {
                std::fs::remove_dir_all(out).at(out)?;
            } else {
                std::fs::remove_file(out).at(out)?;
            }
        }
    }
    std::fs::create_dir_all(out).at(out)
}

fn thread_count(cfg: &Config) -> usize {
    if cfg.threads > 0 {
        cfg.threads
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Builds a corpus: reads, cleans, filters, de-duplicates, redacts, splits and reports.
pub fn build(cfg: &Config, opts: &BuildOptions) -> Result<Report> {
    cfg.validate()?;
    let start = Instant::now();
    let threads = thread_count(cfg);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Config(format!("threads: {e}")))?;
    let (mut files, skipped) = read::discover(&opts.inputs, &cfg.input)?;
    let out_abs = std::path::absolute(&opts.out).at(&opts.out)?;
    files.retain(|f| std::path::absolute(&f.path).map_or(true, |p| !p.starts_with(&out_abs)));
    if let Some(s) = opts.shard {
        files = files
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % s.count == s.index)
            .map(|(_, f)| f)
            .collect();
    }
    prepare_out(&opts.out, opts.force)?;
    let redactor = if cfg.pii.enabled {
        Some(Redactor::new(&cfg.pii.kinds)?)
    } else {
        None
    };
    let (decontam, decontam_refs) = load_decontamination(cfg, &opts.decontaminate)?;
    let mut stage = Stage::create(&opts.out, cfg)?;
    let mut dedup_refs = Vec::new();
    for earlier in &opts.dedup_against {
        check_corpus(earlier)?;
        let items = stage.dedup.add_earlier_corpus(earlier)?;
        dedup_refs.push(Reference {
            path: earlier.display().to_string(),
            sha256: file_sha256(&earlier.join("manifest.json"))?,
            items,
        });
    }
    let ctx = Arc::new(Context {
        cfg: cfg.clone(),
        redactor,
        decontam,
        hasher: stage.dedup.hasher().clone(),
    });
    let mut report = Report {
        files: crate::report::Files {
            skipped: skipped.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    let total_bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(&f.path).ok())
        .map(|m| m.len())
        .sum();
    let bar = &opts.progress;
    bar.set_length(total_bytes);
    bar.set_message("reading");
    let mut inputs = Vec::new();
    // Items of a file arrive before its end, so its kept documents are counted until then.
    let mut kept_in_file = 0u64;
    run_ordered(&files, cfg, &ctx, threads, opts.strict, bar, |done| {
        match done {
            Done::FileDone(Ok(summary)) => {
                report.files.read += 1;
                report.bytes_in += summary.bytes;
                report.files.lossy_utf8 += summary.lossy_utf8;
                report.files.truncated += summary.truncated;
                let kind = report.sources.entry(summary.format.clone()).or_default();
                kind.files += 1;
                kind.docs_in += summary.docs;
                kind.malformed += summary.malformed;
                kind.kept += std::mem::take(&mut kept_in_file);
                if let Some(reason) = &summary.skipped {
                    report.files.skipped.push(read::SkippedFile {
                        source: summary.source.clone(),
                        reason: reason.clone(),
                    });
                }
                bar.inc(summary.bytes);
                inputs.push(summary);
            }
            Done::FileDone(Err(message)) => {
                kept_in_file = 0;
                if opts.strict {
                    return Err(Error::Strict(message));
                }
                tracing::warn!("{message}");
                report.files.errors.push(message);
            }
            Done::Items(items) => {
                for p in items {
                    report.docs_in += 1;
                    match p {
                        Processed::Dropped {
                            id,
                            reason,
                            text,
                            detail,
                            lang,
                        } => {
                            if opts.strict && reason == "malformed" {
                                return Err(Error::Strict(format!("{id}: {detail}")));
                            }
                            if let Some(l) = lang {
                                *report.languages_in.entry(l.to_owned()).or_default() += 1;
                            }
                            report.drop_doc(reason, &id, &text, detail);
                        }
                        Processed::Kept {
                            doc,
                            exact,
                            sig,
                            redactions,
                        } => {
                            kept_in_file += 1;
                            *report.languages_in.entry(doc.lang.clone()).or_default() += 1;
                            for (k, v) in redactions {
                                *report.redactions.entry(k.to_owned()).or_default() += v;
                            }
                            stage.push(&doc, exact, &sig)?;
                        }
                    }
                }
                bar.set_message(format!(
                    "{} docs read, {} staged",
                    report.docs_in,
                    stage.dedup.len()
                ));
            }
        }
        Ok(())
    })?;
    let manifest = Manifest {
        duet_version: env!("CARGO_PKG_VERSION").into(),
        kind: "build".into(),
        config: cfg.clone(),
        inputs,
        skipped,
        shard: opts.shard.map(|s| format!("{}/{}", s.index, s.count)),
        dedup_against: dedup_refs,
        decontaminate: decontam_refs,
        merged_from: Vec::new(),
        docs_in: 0,
        docs_out: 0,
        splits: BTreeMap::new(),
        shards: Vec::new(),
    };
    pool.install(|| finish(stage, cfg, &opts.out, report, manifest, bar, start))
}

/// Reads the evaluation sets into a decontaminator.
fn load_decontamination(
    cfg: &Config,
    paths: &[PathBuf],
) -> Result<(Decontaminator, Vec<Reference>)> {
    let mut d = Decontaminator::new(cfg.decontaminate.ngram);
    let mut refs = Vec::new();
    if paths.is_empty() {
        return Ok((d, refs));
    }
    let (files, _) = read::discover(paths, &cfg.input)?;
    for f in files {
        let mut items = 0;
        read::read_file(&f, &cfg.input, &mut |item| {
            if let RawItem::Doc(doc) = item {
                let text = if doc.html {
                    read::html::extract(&doc.text).text
                } else {
                    doc.text
                };
                d.add(&clean::clean(&text, &cfg.clean));
                items += 1;
            }
            Ok(())
        })?;
        refs.push(Reference {
            path: f.path.display().to_string(),
            sha256: file_sha256(&f.path)?,
            items,
        });
    }
    Ok((d, refs))
}

/// Runs the reader, the workers and the in-order consumer.
fn run_ordered(
    files: &[InputFile],
    cfg: &Config,
    ctx: &Arc<Context>,
    threads: usize,
    strict: bool,
    bar: &ProgressBar,
    mut consume: impl FnMut(Done) -> Result<()>,
) -> Result<()> {
    let in_flight = threads * 4;
    let (permit_tx, permit_rx) = sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        let _ = permit_tx.send(());
    }
    let (work_tx, work_rx) = sync_channel::<(u64, Unit)>(in_flight);
    let (done_tx, done_rx) = sync_channel::<(u64, Done)>(in_flight);
    let work_rx = Arc::new(Mutex::new(work_rx));
    std::thread::scope(|scope| -> Result<()> {
        let reader = scope.spawn(move || read_all(files, cfg, strict, &permit_rx, &work_tx));
        for _ in 0..threads {
            let work_rx = Arc::clone(&work_rx);
            let done_tx: SyncSender<(u64, Done)> = done_tx.clone();
            let ctx = Arc::clone(ctx);
            scope.spawn(move || {
                loop {
                    let next = work_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((seq, unit))) = next else { return };
                    let done = match unit {
                        Unit::Items(items) => {
                            Done::Items(items.into_iter().map(|i| ctx.process(i)).collect())
                        }
                        Unit::FileDone(s) => Done::FileDone(s),
                    };
                    if done_tx.send((seq, done)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
        let mut next = 0u64;
        let mut outcome = Ok(());
        for (seq, done) in done_rx.iter() {
            pending.insert(seq, done);
            while let Some(done) = pending.remove(&next) {
                next += 1;
                if outcome.is_ok() {
                    outcome = consume(done);
                }
                let _ = permit_tx.send(());
            }
            if outcome.is_err() {
                break;
            }
        }
        // On error: dropping the receivers stops the workers and the reader.
        drop(done_rx);
        drop(permit_tx);
        let read_result = reader
            .join()
            .unwrap_or_else(|_| Err(Error::Strict("reader thread panicked".into())));
        bar.tick();
        outcome.and(read_result)
    })
}

/// The reader thread: files in order, batches of raw documents, a permit per batch.
fn read_all(
    files: &[InputFile],
    cfg: &Config,
    strict: bool,
    permits: &Receiver<()>,
    work: &SyncSender<(u64, Unit)>,
) -> Result<()> {
    let mut seq = 0u64;
    let mut send = |unit: Unit| -> bool {
        if permits.recv().is_err() {
            return false;
        }
        let ok = work.send((seq, unit)).is_ok();
        seq += 1;
        ok
    };
    for file in files {
        let mut batch = Vec::with_capacity(BATCH);
        let mut stopped = false;
        let result = read::read_file(file, &cfg.input, &mut |item| {
            batch.push(item);
            if batch.len() == BATCH
                && !send(Unit::Items(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(BATCH),
                )))
            {
                stopped = true;
                return Err(Error::Strict("stopped".into()));
            }
            Ok(())
        });
        if stopped {
            return Ok(());
        }
        if !batch.is_empty() && !send(Unit::Items(batch)) {
            return Ok(());
        }
        let done = result.map_err(|e| format!("{}: {e}", file.source));
        let failed = done.is_err();
        if !send(Unit::FileDone(done)) || (failed && strict) {
            return Ok(());
        }
    }
    Ok(())
}

/// Resolves duplicates, writes shards, the dedup index, the report and the manifest.
fn finish(
    stage: Stage,
    cfg: &Config,
    out: &Path,
    mut report: Report,
    mut manifest: Manifest,
    bar: &ProgressBar,
    start: Instant,
) -> Result<Report> {
    let Stage {
        dir: staging,
        docs,
        docs_path,
        dedup,
    } = stage;
    let f = docs.finish().at(&docs_path)?;
    f.into_inner()
        .map_err(|e| Error::Io {
            path: docs_path.clone(),
            source: e.into_error(),
        })?
        .sync_all()
        .at(&docs_path)?;
    bar.set_message("de-duplicating");
    let res = dedup.resolve()?;
    let clusters = res.clusters();
    report.duplicates.clusters = clusters.len() as u64;
    let top: BTreeMap<u32, usize> = clusters
        .iter()
        .take(CLUSTERS_IN_REPORT)
        .enumerate()
        .map(|(i, (root, _))| (*root, i))
        .collect();
    let mut listed: Vec<Cluster> = clusters
        .iter()
        .take(CLUSTERS_IN_REPORT)
        .map(|(root, size)| Cluster {
            representative: if *root < res.first_own() {
                format!("earlier corpus document {root}")
            } else {
                String::new()
            },
            size: *size,
            members: Vec::new(),
        })
        .collect();
    bar.set_message("writing shards");
    let mut writers = Split::ALL
        .iter()
        .map(|&s| ShardWriter::new(out, s, cfg.output.shard_docs, cfg.output.zstd_level))
        .collect::<Result<Vec<_>>>()?;
    let dedup_dir = out.join("dedup");
    std::fs::create_dir_all(&dedup_dir).at(&dedup_dir)?;
    let mut sigs = SignatureWriter::create(&dedup_dir.join("signatures.bin"), &cfg.dedup)?;
    let mut order = Vec::new();
    let mut rows = res.rows()?;
    for _ in 0..res.first_own() {
        rows.next_row()?;
    }
    let reader = BufReader::with_capacity(
        1 << 16,
        zstd::stream::read::Decoder::new(File::open(&docs_path).at(&docs_path)?).at(&docs_path)?,
    );
    for (k, line) in reader.lines().enumerate() {
        let line = line.at(&docs_path)?;
        let doc: Document = serde_json::from_str(&line)?;
        let idx = res.first_own() + k as u32;
        let row = rows.next_row()?;
        let verdict = res.verdict(idx);
        let root = res.root(idx);
        if let Some(&slot) = top.get(&root) {
            let c = &mut listed[slot];
            if verdict == Verdict::Keep {
                c.representative = doc.id.clone();
            } else if c.members.len() < 5 {
                c.members.push(doc.id.clone());
            }
        }
        if let Some(reason) = verdict.reason() {
            report.drop_doc(reason, &doc.id, &doc.text, String::new());
            continue;
        }
        let s = split::assign(&doc.id, &cfg.split);
        writers[s as usize].write(&doc)?;
        sigs.push_raw(&row)?;
        order.push(s.code());
        report.docs_out += 1;
        *report.splits.entry(s.name().to_owned()).or_default() += 1;
        *report.languages.entry(doc.lang.clone()).or_default() += 1;
        let chars = doc.text.chars().count() as u64;
        report.chars_out += chars;
        report.count_length(chars);
    }
    report.duplicates.largest = listed;
    let mut shards: Vec<ShardInfo> = Vec::new();
    for w in writers {
        shards.extend(w.finish()?);
    }
    sigs.finish()?;
    write_atomic(&dedup_dir.join("order.bin"), &order)?;
    std::fs::remove_dir_all(&staging).at(&staging)?;
    report.seconds = start.elapsed().as_secs_f64();
    write_atomic(
        &out.join("report.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    write_atomic(&out.join("report.md"), report.to_markdown().as_bytes())?;
    manifest.docs_in = report.docs_in;
    manifest.docs_out = report.docs_out;
    manifest.splits = report.splits.clone();
    manifest.shards = shards;
    write_atomic(
        &out.join("manifest.json"),
        &serde_json::to_vec_pretty(&manifest)?,
    )?;
    bar.finish_with_message(format!(
        "{} of {} documents kept",
        report.docs_out, report.docs_in
    ));
    Ok(report)
}

/// Options of `merge`.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// Corpus directories made by `build --shard K/N`, in order.
    pub parts: Vec<PathBuf>,
    /// The merged corpus directory.
    pub out: PathBuf,
    /// Replace `out` if it exists.
    pub force: bool,
    /// Progress display.
    pub progress: ProgressBar,
}

/// Combines shard outputs into one corpus, removing duplicates across them. The parts must
/// have been built with the same configuration; it is taken from their manifests.
pub fn merge(opts: &MergeOptions) -> Result<Report> {
    let start = Instant::now();
    let first = opts
        .parts
        .first()
        .ok_or_else(|| Error::Config("merge needs at least one corpus".into()))?;
    check_corpus(first)?;
    let cfg = Manifest::load(first)?.config;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(thread_count(&cfg))
        .build()
        .map_err(|e| Error::Config(format!("threads: {e}")))?;
    prepare_out(&opts.out, opts.force)?;
    let mut stage = Stage::create(&opts.out, &cfg)?;
    let mut report = Report::default();
    let mut merged_from = Vec::new();
    let mut inputs = Vec::new();
    let mut skipped = Vec::new();
    for part in &opts.parts {
        check_corpus(part)?;
        let m = Manifest::load(part)?;
        if m.config.dedup != cfg.dedup || m.config.split != cfg.split {
            return Err(Error::NotACorpus {
                path: part.clone(),
                reason: format!(
                    "built with other [dedup] or [split] settings than {}",
                    first.display()
                ),
            });
        }
        let report_path = part.join("report.json");
        let part_report: Report =
            serde_json::from_slice(&std::fs::read(&report_path).at(&report_path)?)?;
        report.absorb(&part_report);
        inputs.extend(m.inputs);
        skipped.extend(m.skipped);
        let order_path = part.join("dedup").join("order.bin");
        let order = std::fs::read(&order_path).at(&order_path)?;
        let mut sigs = SignatureReader::open(&part.join("dedup").join("signatures.bin"))?;
        let mut readers = Split::ALL
            .iter()
            .map(|&s| SplitReader::open(part, s))
            .collect::<Result<Vec<_>>>()?;
        let mut n = 0u64;
        for &code in &order {
            let reader = readers
                .get_mut(code as usize)
                .ok_or_else(|| Error::NotACorpus {
                    path: part.clone(),
                    reason: format!("order.bin names split {code}"),
                })?;
            let doc = reader
                .next()
                .transpose()?
                .ok_or_else(|| Error::NotACorpus {
                    path: part.clone(),
                    reason: "order.bin lists more documents than the shards hold".into(),
                })?;
            let (exact, sig) = sigs.next_row()?.ok_or_else(|| Error::NotACorpus {
                path: part.clone(),
                reason: "signatures.bin holds fewer rows than order.bin".into(),
            })?;
            stage.push(&doc, exact, &sig)?;
            n += 1;
        }
        opts.progress.inc(1);
        merged_from.push(Reference {
            path: part.display().to_string(),
            sha256: file_sha256(&part.join("manifest.json"))?,
            items: n,
        });
    }
    report.files.skipped = skipped.clone();
    let manifest = Manifest {
        duet_version: env!("CARGO_PKG_VERSION").into(),
        kind: "merge".into(),
        config: cfg.clone(),
        inputs,
        skipped,
        shard: None,
        dedup_against: Vec::new(),
        decontaminate: Vec::new(),
        merged_from,
        docs_in: 0,
        docs_out: 0,
        splits: BTreeMap::new(),
        shards: Vec::new(),
    };
    // Documents dropped inside the parts were counted by their reports; the merged corpus
    // counts its own duplicates on top, so in = kept + dropped still holds.
    pool.install(|| {
        finish(
            stage,
            &cfg,
            &opts.out,
            report,
            manifest,
            &opts.progress,
            start,
        )
    })
}
