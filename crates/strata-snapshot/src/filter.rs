//! Which snapshots a [`walk`](crate::Snapshotter::walk) visits.

use crate::{Info, SnapshotKind};

/// A conjunction of conditions on a snapshot, as containerd's walk filters express them
/// (`kind==active,parent==p,labels."k"==v`). The empty filter ([`Filter::all`]) matches
/// everything; each builder call adds one more condition that must also hold.
///
/// ```
/// # use strata_snapshot::{Filter, SnapshotKind};
/// let f = Filter::all()
///     .kind(SnapshotKind::Active)
///     .parent(Some("sha256:base"))
///     .label_eq("containerd.io/gc.root", "x");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    kind: Option<SnapshotKind>,
    name: Option<String>,
    name_prefix: Option<String>,
    parent: Option<ParentMatch>,
    labels: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ParentMatch {
    Is(Option<String>),
    Any,
}

impl Filter {
    /// Matches every snapshot.
    pub fn all() -> Filter {
        Filter::default()
    }

    /// Only snapshots of this kind.
    pub fn kind(mut self, kind: SnapshotKind) -> Filter {
        self.kind = Some(kind);
        self
    }

    /// Only the snapshot with exactly this key or name.
    pub fn name(mut self, name: &str) -> Filter {
        self.name = Some(name.to_owned());
        self
    }

    /// Only snapshots whose key or name starts with `prefix`.
    pub fn name_prefix(mut self, prefix: &str) -> Filter {
        self.name_prefix = Some(prefix.to_owned());
        self
    }

    /// Only snapshots whose parent is `parent` (`None`: snapshots without a parent).
    pub fn parent(mut self, parent: Option<&str>) -> Filter {
        self.parent = Some(ParentMatch::Is(parent.map(str::to_owned)));
        self
    }

    /// Only snapshots that have a parent (containerd's `parent!=""`).
    pub fn has_parent(mut self) -> Filter {
        self.parent = Some(ParentMatch::Any);
        self
    }

    /// Only snapshots that carry the label `key`, whatever its value.
    pub fn label(mut self, key: &str) -> Filter {
        self.labels.push((key.to_owned(), None));
        self
    }

    /// Only snapshots whose label `key` is `value`.
    pub fn label_eq(mut self, key: &str, value: &str) -> Filter {
        self.labels.push((key.to_owned(), Some(value.to_owned())));
        self
    }

    /// Whether `info` satisfies every condition.
    pub fn matches(&self, info: &Info) -> bool {
        self.kind.is_none_or(|k| k == info.kind)
            && self.name.as_ref().is_none_or(|n| *n == info.name)
            && self
                .name_prefix
                .as_ref()
                .is_none_or(|p| info.name.starts_with(p.as_str()))
            && self.parent.as_ref().is_none_or(|p| match p {
                ParentMatch::Is(want) => *want == info.parent,
                ParentMatch::Any => info.parent.is_some(),
            })
            && self
                .labels
                .iter()
                .all(|(k, v)| match (info.labels.get(k), v) {
                    (Some(have), Some(want)) => have == want,
                    (Some(_), None) => true,
                    (None, _) => false,
                })
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::Labels;

    fn info(name: &str, kind: SnapshotKind, parent: Option<&str>, labels: &[(&str, &str)]) -> Info {
        Info {
            kind,
            name: name.to_owned(),
            parent: parent.map(str::to_owned),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Labels>(),
            created: SystemTime::UNIX_EPOCH,
            updated: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn conditions_combine() {
        let a = info("a-1", SnapshotKind::Active, Some("p"), &[("l", "2")]);
        let c = info("p", SnapshotKind::Committed, None, &[]);
        assert!(Filter::all().matches(&a) && Filter::all().matches(&c));
        assert!(Filter::all().kind(SnapshotKind::Active).matches(&a));
        assert!(!Filter::all().kind(SnapshotKind::Active).matches(&c));
        assert!(Filter::all().name_prefix("a-").matches(&a));
        assert!(!Filter::all().name_prefix("a-").matches(&c));
        assert!(Filter::all().name("p").matches(&c));
        assert!(Filter::all().parent(Some("p")).matches(&a));
        assert!(Filter::all().parent(None).matches(&c));
        assert!(!Filter::all().parent(None).matches(&a));
        assert!(Filter::all().has_parent().matches(&a));
        assert!(!Filter::all().has_parent().matches(&c));
        assert!(Filter::all().label("l").matches(&a));
        assert!(Filter::all().label_eq("l", "2").matches(&a));
        assert!(!Filter::all().label_eq("l", "3").matches(&a));
        assert!(!Filter::all().label("l").matches(&c));
        assert!(
            !Filter::all()
                .label("l")
                .kind(SnapshotKind::View)
                .matches(&a)
        );
    }
}
