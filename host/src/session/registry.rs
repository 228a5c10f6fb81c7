//! The sessions by client id: finding, replacing and expiring them.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{QueueLimits, Session};

/// What [`SessionRegistry::open`] found for a CONNECT.
#[derive(Debug)]
pub struct Opened {
    /// The session the new connection will serve.
    pub session: Arc<Session>,
    /// True when an existing session was resumed (CONNACK session present).
    pub present: bool,
    /// A session this client id had, discarded by clean start: its
    /// subscriptions must leave the router.
    pub discarded: Option<Arc<Session>>,
}

/// All sessions, online and offline.
#[derive(Debug, Default)]
pub struct SessionRegistry {
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
}

impl SessionRegistry {
    /// Finds or creates the session for a client id. With `clean_start`
    /// an existing session is discarded and a new one made. A connection
    /// still serving the old or resumed session is told to close (taken
    /// over); the caller then waits for it with [`Session::serve`].
    pub fn open(
        &self,
        client_id: &Arc<str>,
        clean_start: bool,
        expiry_secs: u32,
        limits: QueueLimits,
    ) -> Opened {
        let mut sessions = self.sessions.lock();
        let existing = sessions.get(client_id).cloned();
        if let Some(old) = &existing {
            let mut state = old.lock();
            if state.online {
                state.taken_over = true;
                drop(state);
                old.wake();
            }
        }
        match existing {
            Some(session) if !clean_start => {
                session.lock().expiry_secs = expiry_secs;
                Opened {
                    session,
                    present: true,
                    discarded: None,
                }
            }
            existing => {
                let session = Arc::new(Session::new(client_id.clone(), expiry_secs, limits));
                sessions.insert(client_id.clone(), session.clone());
                Opened {
                    session,
                    present: false,
                    discarded: existing,
                }
            }
        }
    }

    /// Removes `session` if it is still the one registered for its client id
    /// (a newer session under the same id is left alone). True if removed.
    pub fn remove(&self, session: &Arc<Session>) -> bool {
        let mut sessions = self.sessions.lock();
        match sessions.get(&session.client_id) {
            Some(current) if Arc::ptr_eq(current, session) => {
                sessions.remove(&session.client_id);
                true
            }
            _ => false,
        }
    }

    /// Removes `session` if nobody served it since `generation` and it is
    /// offline: the end of its expiry interval. True if removed.
    pub fn expire(&self, session: &Arc<Session>, generation: u64) -> bool {
        let mut sessions = self.sessions.lock();
        let state = session.lock();
        if state.online || state.generation != generation {
            return false;
        }
        drop(state);
        match sessions.get(&session.client_id) {
            Some(current) if Arc::ptr_eq(current, session) => {
                sessions.remove(&session.client_id);
                true
            }
            _ => false,
        }
    }

    /// Tells every connection serving a session to close (broker shutdown).
    pub fn close_all(&self) {
        let sessions: Vec<Arc<Session>> = self.sessions.lock().values().cloned().collect();
        for session in sessions {
            let mut state = session.lock();
            if state.online {
                state.closing = true;
                drop(state);
                session.wake();
            }
        }
    }

    /// Number of sessions, online and offline.
    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    /// True when there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: QueueLimits = QueueLimits {
        max_queued_messages: 10,
        max_queued_qos0: 10,
    };

    #[test]
    fn a_persistent_session_is_resumed_and_clean_start_replaces_it() {
        let registry = SessionRegistry::default();
        let id: Arc<str> = "client".into();
        let first = registry.open(&id, false, 60, LIMITS);
        assert!(!first.present);
        let again = registry.open(&id, false, 60, LIMITS);
        assert!(again.present);
        assert!(Arc::ptr_eq(&first.session, &again.session));
        let clean = registry.open(&id, true, 0, LIMITS);
        assert!(!clean.present);
        assert!(Arc::ptr_eq(
            clean.discarded.as_ref().unwrap(),
            &first.session
        ));
        assert!(
            !registry.remove(&first.session),
            "the old one is gone already"
        );
        assert!(registry.remove(&clean.session));
        assert!(registry.is_empty());
    }

    #[test]
    fn opening_an_online_session_marks_it_taken_over() {
        let registry = SessionRegistry::default();
        let id: Arc<str> = "client".into();
        let first = registry.open(&id, false, 60, LIMITS);
        first.session.lock().online = true;
        let _second = registry.open(&id, false, 60, LIMITS);
        assert!(first.session.lock().taken_over);
    }

    #[test]
    fn expiry_spares_a_session_served_again_since() {
        let registry = SessionRegistry::default();
        let id: Arc<str> = "client".into();
        let opened = registry.open(&id, false, 60, LIMITS);
        opened.session.lock().generation = 2;
        assert!(!registry.expire(&opened.session, 1));
        assert!(registry.expire(&opened.session, 2));
    }
}
