"""LICENSE and CITATION.cff: the citation file is valid CFF 1.2.0 and names the licence the
package declares.

The schema is the Citation File Format's own 1.2.0 schema.json
(https://citation-file-format.github.io/1.2.0/schema.json, CC-BY-4.0), vendored as
tests/fixtures/cff-1.2.0-schema.json from the cffconvert 2.0.0 wheel on PyPI
(cffconvert/schemas/1.2.0/schema.json): cffconvert itself needs jsonschema < 4, which the pinned
set (jsonschema 4.26.0) excludes, so CI checks the file against the schema with jsonschema."""

import json
import tomllib
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "cff-1.2.0-schema.json").read_text())


def validator():
    return jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def test_citation_cff_is_valid_cff_1_2():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator().iter_errors(citation)]
    assert not errors, errors
    assert citation["cff-version"] == "1.2.0"
    paper = [r for r in citation["references"] if "2105.14471" in json.dumps(r)]
    assert len(paper) == 1 and paper[0]["year"] == 2021


def test_the_schema_check_catches_an_invalid_file():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    broken = {k: v for k, v in citation.items() if k != "authors"}
    assert any("authors" in e.message for e in validator().iter_errors(broken))
    assert list(validator().iter_errors({**citation, "version": {"not": "a string"}}))


def test_licence_file_and_metadata_agree():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert yaml.safe_load((ROOT / "CITATION.cff").read_text())["license"] == declared
