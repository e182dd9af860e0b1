//! The mark phase as a pure function, containerd's `gc.Tricolor`: given the roots and what
//! each node references, the set of nodes reachable from the roots. It knows nothing of the
//! store; [`super::graph`] provides the metadata's graph.
//!
//! White nodes are those not yet met; grey ones are met, their references still to follow
//! (the stack); black ones are met and followed. A node turns grey once, so cycles and
//! shared children are followed once; when no grey node is left, the black ones are the
//! reachable set.

use std::collections::HashSet;
use std::hash::Hash;

/// Every node reachable from `roots` through `refs`, the roots included. The first error
/// `refs` returns ends the mark.
pub fn tricolor<N, E>(
    roots: impl IntoIterator<Item = N>,
    mut refs: impl FnMut(&N) -> Result<Vec<N>, E>,
) -> Result<HashSet<N>, E>
where
    N: Clone + Eq + Hash,
{
    // Grey or black: met.
    let mut met: HashSet<N> = HashSet::new();
    let mut grey: Vec<N> = Vec::new();
    for root in roots {
        if met.insert(root.clone()) {
            grey.push(root);
        }
    }
    while let Some(node) = grey.pop() {
        for child in refs(&node)? {
            if met.insert(child.clone()) {
                grey.push(child);
            }
        }
    }
    Ok(met)
}

#[cfg(test)]
mod tests;
