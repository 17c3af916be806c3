//! `duet-tokenizer`: train tokenizers on a corpus, encode it into memory-mapped token shards,
//! and batch the shards for training.
//!
//! ```
//! use duet_tokenizer::{Kind, TrainOptions, train};
//!
//! let texts = ["the cat sat on the mat", "床前明月光，疑是地上霜"].repeat(50);
//! let tok = train(texts.iter(), &TrainOptions::new(Kind::Bpe, 300)).unwrap();
//! let ids = tok.encode("the cat 明月", false).unwrap().get_ids().to_vec();
//! assert_eq!(tok.decode(&ids, false).unwrap(), "the cat 明月");
//! ```

pub mod batch;
pub mod encode;
mod error;
pub mod shard;
pub mod train;

pub use encode::{EncodeOptions, TokenManifest, encode_corpus, load_tokenizer};
pub use error::{Error, Result};
pub use shard::{TokenShard, TokenStream};
pub use train::{Kind, TrainOptions, measure, train, train_on_corpus};
