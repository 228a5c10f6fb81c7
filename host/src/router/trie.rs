//! The subscription tree: topic filters split into levels, so matching a
//! topic walks at most its own levels instead of every subscription.
//!
//! `+` and `#` levels have a slot of their own in each node (they can never
//! be literal levels of a topic name), so matching a topic level costs one
//! hash lookup (its literal child) rather than three. A filter's
//! subscribers hang off the node of its last level; shared subscriptions
//! (`$share/<group>/<filter>`) hang off the node of their inner filter,
//! per group.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use firehose_mqtt::SubscriptionOptions;

use crate::session::Session;

/// One subscription of one session, as the router keeps it.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub session: Arc<Session>,
    pub options: SubscriptionOptions,
    pub identifier: Option<u32>,
}

/// The members of one shared-subscription group on one filter.
#[derive(Debug, Default)]
pub struct SharedGroup {
    pub members: Vec<Subscriber>,
    /// Round-robin position.
    next: AtomicUsize,
}

impl SharedGroup {
    /// The member to deliver the next message to: the next one in turn
    /// that has a connection, else the next one in turn.
    pub fn pick(&self) -> Option<&Subscriber> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let member = &self.members[(start + i) % n];
            if member.session.lock().online {
                self.next.store(start + i + 1, Ordering::Relaxed);
                return Some(member);
            }
        }
        Some(&self.members[start % n])
    }
}

#[derive(Debug, Default)]
struct Node {
    /// Literal levels.
    children: HashMap<Box<str>, Node>,
    /// The `+` level.
    plus: Option<Box<Node>>,
    /// The `#` level.
    hash: Option<Box<Node>>,
    subscribers: Vec<Subscriber>,
    shared: Vec<(Box<str>, SharedGroup)>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_none()
            && self.subscribers.is_empty()
            && self.shared.is_empty()
    }

    /// The child for filter level `level`, made if missing.
    fn child_or_insert(&mut self, level: &str) -> &mut Node {
        match level {
            "+" => self.plus.get_or_insert_with(Box::default),
            "#" => self.hash.get_or_insert_with(Box::default),
            _ => self.children.entry(level.into()).or_default(),
        }
    }

    /// The child for filter level `level`.
    fn child_mut(&mut self, level: &str) -> Option<&mut Node> {
        match level {
            "+" => self.plus.as_deref_mut(),
            "#" => self.hash.as_deref_mut(),
            _ => self.children.get_mut(level),
        }
    }

    /// Drops the child for filter level `level`.
    fn remove_child(&mut self, level: &str) {
        match level {
            "+" => self.plus = None,
            "#" => self.hash = None,
            _ => {
                self.children.remove(level);
            }
        }
    }
}

/// The tree of all subscriptions.
#[derive(Debug, Default)]
pub struct Trie {
    root: Node,
}

/// What matched a topic: plain subscribers, and one pick per shared group.
#[derive(Debug, Default)]
pub struct Matches<'a> {
    pub subscribers: Vec<&'a Subscriber>,
    /// How many tree nodes contributed subscribers; when more than one, a
    /// session may appear more than once.
    pub nodes: usize,
}

impl Trie {
    /// Adds or replaces `session`'s subscription to `filter` (in `group` if
    /// shared). True when it is new.
    pub fn insert(&mut self, filter: &str, group: Option<&str>, subscriber: Subscriber) -> bool {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = node.child_or_insert(level);
        }
        let list = match group {
            None => &mut node.subscribers,
            Some(group) => {
                let at = match node.shared.iter().position(|(g, _)| &**g == group) {
                    Some(at) => at,
                    None => {
                        node.shared.push((group.into(), SharedGroup::default()));
                        node.shared.len() - 1
                    }
                };
                &mut node.shared[at].1.members
            }
        };
        match list
            .iter_mut()
            .find(|s| Arc::ptr_eq(&s.session, &subscriber.session))
        {
            Some(existing) => {
                *existing = subscriber;
                false
            }
            None => {
                list.push(subscriber);
                true
            }
        }
    }

    /// Removes `session`'s subscription to `filter` (in `group` if shared),
    /// pruning emptied nodes. True when there was one.
    pub fn remove(&mut self, filter: &str, group: Option<&str>, session: &Arc<Session>) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        remove_at(&mut self.root, &levels, group, session)
    }

    /// Every subscription whose filter matches `topic`.
    pub fn matches<'a>(&'a self, topic: &str) -> Matches<'a> {
        let mut out = Matches::default();
        let levels: Vec<&str> = topic.split('/').collect();
        let dollar = topic.starts_with('$');
        collect(&self.root, &levels, 0, dollar, &mut out);
        out
    }
}

fn remove_at(
    node: &mut Node,
    levels: &[&str],
    group: Option<&str>,
    session: &Arc<Session>,
) -> bool {
    let Some((first, rest)) = levels.split_first() else {
        let removed = match group {
            None => remove_from(&mut node.subscribers, session),
            Some(group) => match node.shared.iter().position(|(g, _)| &**g == group) {
                Some(at) => {
                    let removed = remove_from(&mut node.shared[at].1.members, session);
                    if node.shared[at].1.members.is_empty() {
                        node.shared.remove(at);
                    }
                    removed
                }
                None => false,
            },
        };
        return removed;
    };
    let Some(child) = node.child_mut(first) else {
        return false;
    };
    let removed = remove_at(child, rest, group, session);
    if child.is_empty() {
        node.remove_child(first);
    }
    removed
}

fn remove_from(list: &mut Vec<Subscriber>, session: &Arc<Session>) -> bool {
    let before = list.len();
    list.retain(|s| !Arc::ptr_eq(&s.session, session));
    list.len() != before
}

fn take<'a>(node: &'a Node, out: &mut Matches<'a>) {
    let before = out.subscribers.len();
    out.subscribers.extend(node.subscribers.iter());
    out.subscribers
        .extend(node.shared.iter().filter_map(|(_, group)| group.pick()));
    if out.subscribers.len() > before {
        out.nodes += 1;
    }
}

fn collect<'a>(node: &'a Node, levels: &[&str], depth: usize, dollar: bool, out: &mut Matches<'a>) {
    // A leading wildcard never matches a `$` topic.
    let wildcards = !(dollar && depth == 0);
    if wildcards && let Some(hash) = &node.hash {
        take(hash, out);
    }
    let Some(level) = levels.get(depth) else {
        take(node, out);
        return;
    };
    if wildcards && let Some(plus) = &node.plus {
        collect(plus, levels, depth + 1, dollar, out);
    }
    if let Some(child) = node.children.get(*level) {
        collect(child, levels, depth + 1, dollar, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::QueueLimits;

    fn session(id: &str) -> Arc<Session> {
        Arc::new(Session::new(
            id.into(),
            0,
            QueueLimits {
                max_queued_messages: 10,
                max_queued_qos0: 10,
            },
        ))
    }

    fn sub(session: &Arc<Session>) -> Subscriber {
        Subscriber {
            session: session.clone(),
            options: SubscriptionOptions::default(),
            identifier: None,
        }
    }

    fn matched(trie: &Trie, topic: &str) -> Vec<String> {
        let mut ids: Vec<String> = trie
            .matches(topic)
            .subscribers
            .iter()
            .map(|s| s.session.client_id.to_string())
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn wildcards_match_as_the_specification_says() {
        let mut trie = Trie::default();
        let (a, b, c, d, e) = (
            session("a"),
            session("b"),
            session("c"),
            session("d"),
            session("e"),
        );
        trie.insert("sport/tennis/#", None, sub(&a));
        trie.insert("sport/+/player1", None, sub(&b));
        trie.insert("#", None, sub(&c));
        trie.insert("+/+", None, sub(&d));
        trie.insert("$SYS/#", None, sub(&e));
        assert_eq!(matched(&trie, "sport/tennis/player1"), ["a", "b", "c"]);
        assert_eq!(matched(&trie, "sport/tennis"), ["a", "c", "d"]);
        assert_eq!(matched(&trie, "$SYS/broker/load"), ["e"]);
        assert_eq!(matched(&trie, "/finance"), ["c", "d"]);
        assert_eq!(matched(&trie, "$SYS"), ["e"]);
    }

    #[test]
    fn resubscribing_replaces_and_removing_prunes() {
        let mut trie = Trie::default();
        let a = session("a");
        assert!(trie.insert("x/y", None, sub(&a)));
        assert!(!trie.insert("x/y", None, sub(&a)));
        assert_eq!(matched(&trie, "x/y"), ["a"]);
        assert!(trie.remove("x/y", None, &a));
        assert!(!trie.remove("x/y", None, &a));
        assert!(trie.root.is_empty());
    }

    #[test]
    fn removing_wildcard_filters_prunes_their_nodes_and_keeps_the_others() {
        let mut trie = Trie::default();
        let (a, b) = (session("a"), session("b"));
        for filter in ["a/+/c", "a/#", "#", "+/b", "+", "a/+/#"] {
            assert!(trie.insert(filter, None, sub(&a)), "{filter}");
        }
        trie.insert("a/x/c", None, sub(&b));
        assert_eq!(matched(&trie, "a/x/c"), ["a", "a", "a", "a", "b"]);
        for filter in ["a/+/c", "a/#", "#", "+/b", "+", "a/+/#"] {
            assert!(trie.remove(filter, None, &a), "{filter}");
            assert!(!trie.remove(filter, None, &a), "{filter}");
        }
        assert_eq!(matched(&trie, "a/x/c"), ["b"]);
        assert!(matched(&trie, "q/b").is_empty());
        assert!(trie.remove("a/x/c", None, &b));
        assert!(trie.root.is_empty());
    }

    #[test]
    fn a_shared_group_gives_each_message_to_one_member_in_turn() {
        let mut trie = Trie::default();
        let (a, b) = (session("a"), session("b"));
        a.lock().online = true;
        b.lock().online = true;
        trie.insert("jobs/#", Some("g"), sub(&a));
        trie.insert("jobs/#", Some("g"), sub(&b));
        let picks: Vec<String> = (0..4).flat_map(|_| matched(&trie, "jobs/1")).collect();
        assert_eq!(picks.iter().filter(|p| *p == "a").count(), 2);
        assert_eq!(picks.iter().filter(|p| *p == "b").count(), 2);
        assert!(trie.remove("jobs/#", Some("g"), &a));
        assert!(trie.remove("jobs/#", Some("g"), &b));
        assert!(trie.root.is_empty());
    }
}
