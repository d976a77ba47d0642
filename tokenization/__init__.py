"""CPM-Bee tokenizer, data-to-ids conversion, vocabulary build and token shards.

User-facing documentation: tokenization/README.md.
"""

from tokenization.convert import ExtStates, SampleError, convert_data_to_id, rel_to_bucket
from tokenization.tokenizer import CPMBeeTokenizer, TokenizeError
from tokenization.retokenize import RetokenizeReport, retokenize_manifest
from tokenization.shard_format import iter_shard_rows, read_shard
from tokenization.token_shards import fresh_shards, record_to_sample, stale_shards, tokenize_dataset
from tokenization.token_rows import DatasetTokenRows, TokenRow
from tokenization.token_stats import TokenStats
from tokenization.vocab import Vocab, VocabError, file_fingerprint, load_vocab

# Vocabulary building reads raw corpora through the Beam pipeline's reader: import it from
# tokenization.vocab_build (build_vocab_file, VocabBuildConfig) so `import tokenization` stays light.

__all__ = [
    "CPMBeeTokenizer",
    "DatasetTokenRows",
    "RetokenizeReport",
    "TokenRow",
    "TokenStats",
    "ExtStates",
    "SampleError",
    "TokenizeError",
    "Vocab",
    "VocabError",
    "convert_data_to_id",
    "file_fingerprint",
    "fresh_shards",
    "iter_shard_rows",
    "load_vocab",
    "read_shard",
    "record_to_sample",
    "retokenize_manifest",
    "rel_to_bucket",
    "stale_shards",
    "tokenize_dataset",
]
