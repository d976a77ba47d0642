from schemas.export import stale_files


def test_committed_json_schemas_are_fresh():
    assert stale_files() == [], "run `python -m schemas.export` and commit schemas/json/"
