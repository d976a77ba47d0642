"""CPM-Bee tokenizer, data-to-ids conversion, vocabulary build and token shards."""
