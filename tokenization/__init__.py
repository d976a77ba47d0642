"""CPM-Bee tokenizer, data-to-ids conversion, vocabulary build and token shards.

User-facing documentation: tokenization/README.md.
"""

from tokenization.convert import ExtStates, SampleError, convert_data_to_id, rel_to_bucket
from tokenization.tokenizer import CPMBeeTokenizer, TokenizeError
from tokenization.vocab import Vocab, VocabError, file_fingerprint, load_vocab

__all__ = [
    "CPMBeeTokenizer",
    "ExtStates",
    "SampleError",
    "TokenizeError",
    "Vocab",
    "VocabError",
    "convert_data_to_id",
    "file_fingerprint",
    "load_vocab",
    "rel_to_bucket",
]
