//! One read of an image, written to every node at once. The reader sends each chunk to one
//! writer thread per node through a short bounded queue, so the image is never held whole
//! (at most a few chunks are in memory) and the nodes receive in parallel; a node that fails
//! drops out without stopping the others.

use std::io::{Read, Write};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::progress::Bar;
use crate::tools::process::ByteWriter;

/// Bytes read from the source at a time.
pub const CHUNK: usize = 1024 * 1024;
/// Chunks waiting per node.
const QUEUE: usize = 4;

/// One node's end: the command that imports, and its progress bar (in bytes).
pub struct Sink<'b> {
    pub writer: ByteWriter,
    pub bar: &'b Bar,
}

fn drain(sink: Sink<'_>, chunks: Receiver<Arc<Vec<u8>>>) -> Result<String> {
    let Sink { mut writer, bar } = sink;
    let mut broken = None;
    for chunk in chunks {
        if broken.is_some() {
            continue; // keep taking chunks so that the reader never waits for this node
        }
        match writer.write_all(&chunk) {
            Ok(()) => bar.advance(chunk.len() as u64),
            Err(e) => broken = Some(e),
        }
    }
    // The command's own error says more than a broken pipe.
    let finished = writer.finish();
    match (finished, broken) {
        (Err(e), _) => Err(e),
        (Ok(_), Some(e)) => Err(Error::Step(format!("sending the image failed: {e}"))),
        (Ok(out), None) => Ok(out),
    }
}

/// Copies `source` to every sink; returns each sink's outcome in order, and the bytes read.
pub fn fan_out(source: &mut dyn Read, sinks: Vec<Sink<'_>>) -> (Vec<Result<String>>, Result<u64>) {
    std::thread::scope(|scope| {
        let mut senders = Vec::new();
        let mut workers = Vec::new();
        for sink in sinks {
            let (tx, rx) = sync_channel::<Arc<Vec<u8>>>(QUEUE);
            senders.push(tx);
            workers.push(scope.spawn(move || drain(sink, rx)));
        }
        let mut total = 0u64;
        let read = loop {
            if let Err(e) = crate::tools::process::check_interrupted() {
                break Err(e);
            }
            let mut chunk = Vec::with_capacity(CHUNK);
            match Read::take(&mut *source, CHUNK as u64).read_to_end(&mut chunk) {
                Ok(0) => break Ok(total),
                Ok(n) => {
                    total += n as u64;
                    let chunk = Arc::new(chunk);
                    for tx in &senders {
                        let _ = tx.send(Arc::clone(&chunk));
                    }
                }
                Err(e) => break Err(Error::Step(format!("reading the image failed: {e}"))),
            }
        };
        drop(senders);
        let outcomes = workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(Error::Step("a writer panicked".into())))
            })
            .collect();
        (outcomes, read)
    })
}
