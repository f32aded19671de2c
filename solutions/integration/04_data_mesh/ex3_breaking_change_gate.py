"""Exercise integration/04.3 · The release gate: a breaking contract change needs a major version.

In the data mesh of integration/04 every data product publishes under a contract (ODCS YAML) with a
semantic version MAJOR.MINOR.PATCH. Consumers rely on it: they upgrade across minor releases
blindly and read the release notes of a major one. The platform's gate is what makes that
promise true: it compares the proposed contract with the published one and blocks a release
whose version step is smaller than its change.

Your task: return whether `proposed` may replace `published`, where
- the proposed version must be higher than the published one (compared as numbers: 1.10.0 is
  higher than 1.9.3),
- a BREAKING change needs a major release (2.0.0 after 1.9.3): a column removed or renamed; a
  column's type narrowed or changed so that some old value no longer fits (bigint → int,
  decimal(12,2) → decimal(10,2), timestamp → date, bigint → string); a column that may now be
  null (`required` true → false),
- any other change to the columns needs at least a minor release (1.10.0): a column added, a type
  widened (every old value fits the new type), a column that is now required,
- any other edit (a description, tags) needs at least a patch release (1.9.4).
Each contract has `.version` (text) and `.columns`: name, physical_type (normalized Spark SQL
text such as 'bigint', 'decimal(12,2)'), required. `is_widening(old, new)` from
`expert.runtime.contracts` says whether every value of type `old` fits type `new`.

Check it: expert check integration/04.3
"""

from expert.runtime.contracts import DataContract, is_widening

PATCH, MINOR, MAJOR = 1, 2, 3


def release_allowed(published: DataContract, proposed: DataContract) -> bool:
    """May `proposed` replace `published`: is its version step at least as large as its change?"""
    old, new = (tuple(int(part) for part in c.version.split(".")) for c in (published, proposed))
    if new <= old:
        return False
    step = MAJOR if new[0] > old[0] else MINOR if new[1] > old[1] else PATCH
    before = {c.name: c for c in published.columns}
    after = {c.name: c for c in proposed.columns}
    needed = PATCH
    if set(after) - set(before):
        needed = MINOR
    if set(before) - set(after):
        needed = MAJOR
    for name in set(before) & set(after):
        was, now = before[name], after[name]
        if was.physical_type != now.physical_type:
            needed = max(needed, MINOR if is_widening(was.physical_type, now.physical_type) else MAJOR)
        if was.required != now.required:
            needed = max(needed, MAJOR if was.required else MINOR)
    return step >= needed
