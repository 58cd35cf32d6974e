//! Semantics of validation files through the library API (`tessera::validate`): what the
//! expected-relations block computes for wildcards, exclusions, caveats, arrows, `.all`,
//! cycles and expiration, and how its entries are compared.

use std::path::Path;

use tessera::validate::{FileReport, ValidateOptions, validate_source};

fn validate(yaml: &str) -> FileReport {
    validate_source(
        "test.yaml",
        yaml,
        Path::new("."),
        &ValidateOptions::default(),
    )
}

fn assert_passes(yaml: &str) {
    let report = validate(yaml);
    assert!(report.passed(), "{report}");
}

fn assert_fails_with(yaml: &str, needles: &[&str]) -> FileReport {
    let report = validate(yaml);
    assert!(!report.passed(), "unexpectedly passed:\n{yaml}");
    let text = report.to_string();
    for n in needles {
        assert!(text.contains(n), "report lacks {n:?}:\n{text}");
    }
    report
}

const FEATURE_FLAGS: &str = r#"
schema: |-
  definition user {}
  definition group {
      relation member: user
  }
  definition feature {
      relation enabled_for: user:*
  }
  definition project {
      relation flag: feature
      relation member: user | group#member
      permission use = member & flag->enabled_for
  }
relationships: |-
  feature:beta#enabled_for@user:*
  project:p#flag@feature:beta
  project:p#member@user:ann
  project:p#member@group:devs#member
  group:devs#member@user:bo
"#;

#[test]
fn a_subject_through_a_wildcard_intersection_may_list_the_wildcard_or_not() {
    // Found directly only as a member...
    assert_passes(&format!(
        "{FEATURE_FLAGS}validation:\n  project:p#use:\n    - \"[user:ann] is <project:p#member>\"\n    - \"[user:bo] is <group:devs#member>\"\n"
    ));
    // ...or also through the wildcard that let it pass the intersection.
    assert_passes(&format!(
        "{FEATURE_FLAGS}validation:\n  project:p#use:\n    - \"[user:ann] is <project:p#member>/<feature:beta#enabled_for>\"\n    - \"[user:bo] is <group:devs#member>\"\n"
    ));
    // But not some other relation.
    assert_fails_with(
        &format!(
            "{FEATURE_FLAGS}validation:\n  project:p#use:\n    - \"[user:ann] is <feature:beta#enabled_for>\"\n    - \"[user:bo] is <group:devs#member>\"\n"
        ),
        &[
            "test.yaml:23:7: error: `user:ann` on `project:p#use`: the relations through which it is found differ",
        ],
    );
}

#[test]
fn a_userset_does_not_pass_an_intersection_with_a_wildcard() {
    // `group:devs#member` is listed for `member` but is not a user, so `user:*` does not cover it.
    assert_passes(&format!(
        "{FEATURE_FLAGS}validation:\n  project:p#member:\n    - \"[user:ann] is <project:p#member>\"\n    - \"[group:devs#member] is <project:p#member>\"\n    - \"[user:bo] is <group:devs#member>\"\n  project:p#use:\n    - \"[user:ann] is <project:p#member>\"\n    - \"[user:bo] is <group:devs#member>\"\n"
    ));
}

const CAVEATED_BAN: &str = r#"
schema: |-
  definition user {}
  caveat on_weekday(day int) {
      day >= 1 && day <= 5
  }
  definition document {
      relation viewer: user:*
      relation banned: user | user with on_weekday
      permission view = viewer - banned
  }
relationships: |-
  document:d#viewer@user:*
  document:d#banned@user:mallory
  document:d#banned@user:cy[on_weekday]
"#;

#[test]
fn conditional_exclusions_are_marked_and_compared() {
    assert_passes(&format!(
        "{CAVEATED_BAN}assertions:\n  assertFalse:\n    - document:d#view@user:mallory\n  assertCaveated:\n    - document:d#view@user:cy\n  assertTrue:\n    - document:d#view@user:anyone\nvalidation:\n  document:d#view:\n    - \"[user:* - {{user:cy[...], user:mallory}}] is <document:d#viewer>\"\n"
    ));
    let report = assert_fails_with(
        &format!(
            "{CAVEATED_BAN}validation:\n  document:d#view:\n    - \"[user:* - {{user:cy, user:mallory}}] is <document:d#viewer>\"\n"
        ),
        &[
            "the excluded subjects differ",
            "found:    [user:* - {user:cy[...], user:mallory}] is <document:d#viewer>",
        ],
    );
    assert_eq!(report.failures.len(), 1, "{report}");
}

#[test]
fn arrows_all_and_cycles() {
    assert_passes(
        r#"
schema: |-
  definition user {}
  definition group {
      relation member: user | group#member
  }
  definition team {
      relation member: user
  }
  definition doc {
      relation reviewers: team
      relation viewer: group#member
      permission approve = reviewers.all(member)
      permission view = viewer
  }
relationships: |-
  group:a#member@group:b#member
  group:b#member@group:a#member
  group:a#member@user:ann
  group:b#member@user:bo
  doc:x#viewer@group:a#member
  team:t1#member@user:ann
  team:t1#member@user:bo
  team:t2#member@user:ann
  doc:x#reviewers@team:t1
  doc:x#reviewers@team:t2
assertions:
  assertTrue:
    - doc:x#view@user:bo
    - doc:x#approve@user:ann
    - doc:x#view@group:b#member
  assertFalse:
    - doc:x#approve@user:bo
    - doc:y#approve@user:ann
validation:
  doc:x#view:
    - "[group:a#member] is <doc:x#viewer>/<group:b#member>"
    - "[group:b#member] is <group:a#member>"
    - "[user:ann] is <group:a#member>"
    - "[user:bo] is <group:b#member>"
  doc:x#approve:
    - "[user:ann] is <team:t1#member>/<team:t2#member>"
  doc:y#approve: []
"#,
    );
}

#[test]
fn expired_relationships_are_invisible() {
    assert_passes(
        r#"
schema: |-
  use expiration
  definition user {}
  definition doc {
      relation viewer: user with expiration
      permission view = viewer
  }
relationships: |-
  doc:x#viewer@user:old[expiration:2000-01-01T00:00:00Z]
  doc:x#viewer@user:new[expiration:2999-01-01T00:00:00Z]
assertions:
  assertTrue:
    - doc:x#view@user:new
  assertFalse:
    - doc:x#view@user:old
validation:
  doc:x#view:
    - "[user:new] is <doc:x#viewer>"
"#,
    );
}

#[test]
fn expected_subjects_without_paths_compare_subjects_only() {
    assert_passes(&format!(
        "{FEATURE_FLAGS}validation:\n  project:p#use:\n    - \"[user:ann]\"\n    - \"[user:bo]\"\n"
    ));
}

#[test]
fn a_subject_listed_twice_is_an_error() {
    assert_fails_with(
        &format!(
            "{FEATURE_FLAGS}validation:\n  project:p#use:\n    - \"[user:ann]\"\n    - \"[user:ann] is <project:p#member>\"\n    - \"[user:bo]\"\n"
        ),
        &["test.yaml:24:7: error: subject `user:ann` is listed twice (first at line 23)"],
    );
}

#[test]
fn unknown_names_in_expected_relations_are_errors() {
    assert_fails_with(
        &format!("{FEATURE_FLAGS}validation:\n  project:p#usee: []\n"),
        &[
            "test.yaml:22:3: error: expected relations for `project:p#usee`: `project` has no relation or permission `usee`",
        ],
    );
    assert_fails_with(
        &format!("{FEATURE_FLAGS}validation:\n  projects:p#use: []\n"),
        &["definition `projects` is not in the schema"],
    );
}
