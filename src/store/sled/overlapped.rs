//! A bulk import written while its source is still being read
//! ([`crate::store::BulkImport`]): the steps of `bulk.rs` taken one call
//! at a time. [`SledStore::bulk_import`] sets the marker (and journals the
//! counters); [`BulkImport::users`] writes users with fixed uidNumbers in
//! chunks, as `bulk.rs` does; [`BulkImport::commit`] writes the groups,
//! the users held back and the memberships, and runs the transaction that
//! removes the marker. Everything before that commit is undone by an
//! error, by [`BulkImport::abandon`], by dropping the handle, or (a crash)
//! when the store opens next: the undo journal covers what each step
//! wrote, as in `bulk.rs`.
//!
//! The groups come after users that were written before them: a group
//! whose gidNumber is allocated does not avoid those users' uidNumbers
//! (`SledStore::bulk_head`), so the numbers are the ones
//! [`SledStore::apply_batch_streamed`] gives the same batch.

use super::bulk::Bulk;
use super::{Result, SledStore, StoreError};
use crate::store::import::{Batch, BatchMode, BatchReport, BatchUser};
use crate::store::BulkImport;

/// A bulk import between its calls; see the module documentation.
pub struct SledBulkImport<'s> {
    store: &'s SledStore,
    /// `None` once committed, abandoned, or undone after an error.
    bulk: Option<Bulk>,
}

impl SledStore {
    /// Begins a [`SledBulkImport`] in `mode` (an import that did not
    /// finish is undone first). Only a store nobody else uses meanwhile,
    /// as [`SledStore::apply_batch_streamed`].
    pub fn bulk_import(&self, mode: BatchMode) -> Result<SledBulkImport<'_>> {
        self.recover_import()?;
        match self.bulk_begin(mode) {
            Ok(bulk) => Ok(SledBulkImport {
                store: self,
                bulk: Some(bulk),
            }),
            Err(e) => Err(self.undone(e)),
        }
    }
}

fn ended() -> StoreError {
    StoreError::Invalid("the import has already ended".into())
}

impl BulkImport for SledBulkImport<'_> {
    fn users(&mut self, users: &mut dyn Iterator<Item = Result<BatchUser>>) -> Result<()> {
        let s = self.store;
        let _w = s.writing();
        let bulk = self.bulk.as_mut().ok_or_else(ended)?;
        s.bulk_users(bulk, users, None).map_err(|e| {
            self.bulk = None;
            s.undone(e)
        })
    }

    fn commit(
        mut self: Box<Self>,
        batch: &Batch,
        users: &mut dyn Iterator<Item = Result<BatchUser>>,
    ) -> Result<BatchReport> {
        let s = self.store;
        let _w = s.writing();
        let mut bulk = self.bulk.take().ok_or_else(ended)?;
        let out = (|| {
            if !batch.users.is_empty() {
                return Err(StoreError::Invalid(
                    "a streamed batch takes its users from the stream".into(),
                ));
            }
            crate::store::Store::check_batch(batch)?;
            s.check_batch_cycles(batch)?;
            let (mut next_uid, next_gid) = s.bulk_head(&mut bulk, batch)?;
            s.bulk_users(&mut bulk, users, Some(&mut next_uid))?;
            let (rest, created) = s.bulk_end(bulk, batch, next_uid, next_gid)?;
            s.finish_bulk(&rest, created)
        })();
        s.end_import(out)
    }

    fn abandon(mut self: Box<Self>) -> Result<()> {
        let s = self.store;
        let _w = s.writing();
        match self.bulk.take() {
            Some(_) => s.undo_import(),
            None => Ok(()),
        }
    }
}

impl Drop for SledBulkImport<'_> {
    fn drop(&mut self) {
        if self.bulk.take().is_some() {
            let _w = self.store.writing();
            if let Err(e) = self.store.undo_import() {
                tracing::error!(
                    "undoing an import that was given up failed ({e}); it is undone when the \
                     store is opened next"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::bulk::META_IMPORT_PENDING;
    use super::*;
    use crate::store::conformance::{batch_group, bulk_name, bulk_user};
    use crate::store::import::BatchMember;
    use crate::store::{Member, NewUser};

    /// More users than two chunks of the bulk writer hold.
    const MANY: usize = 4_500;

    /// A store holding user `old` (in group `staff`, the first gidNumber).
    fn seeded(s: &SledStore) {
        let old = s
            .create_user(NewUser {
                username: "old".into(),
                email: Some("old@example.com".into()),
                ..NewUser::default()
            })
            .unwrap();
        let staff = s.create_group("staff", None).unwrap();
        s.add_member(staff.id, Member::User(old.id)).unwrap();
    }

    fn nothing_pending(s: &SledStore) {
        assert!(s.t.meta.get(META_IMPORT_PENDING).unwrap().is_none());
        assert!(s.journal().unwrap().is_empty());
    }

    /// Users `range`, user i with uidNumber `uid + i`.
    fn fixed(range: std::ops::RangeInclusive<usize>, uid: u32) -> Vec<Result<BatchUser>> {
        range
            .map(|i| Ok(bulk_user(i, Some(uid + i as u32))))
            .collect()
    }

    /// Users (name, uidNumber, gidNumber), groups (name, gidNumber) and
    /// the counters.
    type Numbers = (Vec<(String, u32, u32)>, Vec<(String, u32)>, (u32, u32));

    fn numbers(s: &SledStore) -> Numbers {
        let mut users: Vec<_> = s
            .users()
            .unwrap()
            .into_iter()
            .map(|u| (u.username, u.uid_number, u.gid_number))
            .collect();
        users.sort();
        let mut groups: Vec<_> = s
            .groups()
            .unwrap()
            .into_iter()
            .map(|g| (g.name, g.gid_number))
            .collect();
        groups.sort();
        (users, groups, s.counters().unwrap())
    }

    #[test]
    fn users_written_before_the_head_land_as_the_streamed_batch_would() {
        // Into a store that held users: the fixed uidNumbers run through
        // the range the new group's gidNumber is allocated from. A group
        // imported before its users does not avoid them, so the group
        // written after them must not either.
        let batch = Batch {
            mode: BatchMode::Merge,
            groups: vec![batch_group("big"), batch_group("staff")],
            memberships: vec![
                ("big".into(), BatchMember::User(bulk_name(1))),
                ("big".into(), BatchMember::User(bulk_name(MANY + 1))),
                ("big".into(), BatchMember::User("old".into())),
                ("staff".into(), BatchMember::User(bulk_name(2))),
            ],
            next_uid: Some(crate::store::FIRST_GID_NUMBER + MANY as u32 + 1),
            ..Batch::default()
        };
        let late = || {
            vec![
                Ok(bulk_user(MANY + 1, None)),
                Ok(bulk_user(MANY + 2, None)),
                Ok(BatchUser {
                    user: crate::store::User {
                        username: "OLD".into(),
                        ..bulk_user(0, None).user
                    },
                    ..bulk_user(0, None)
                }),
            ]
        };
        let first = crate::store::FIRST_GID_NUMBER;

        let streamed = SledStore::temporary().unwrap();
        seeded(&streamed);
        let mut all = fixed(1..=MANY, first).into_iter().chain(late());
        let want = streamed.apply_batch_streamed(&batch, &mut all).unwrap();

        let s = SledStore::temporary().unwrap();
        seeded(&s);
        let mut bulk = s.bulk_import(BatchMode::Merge).unwrap();
        bulk.users(&mut fixed(1..=MANY / 2, first).into_iter())
            .unwrap();
        bulk.users(&mut fixed(MANY / 2 + 1..=MANY, first).into_iter())
            .unwrap();
        let got = Box::new(bulk)
            .commit(&batch, &mut late().into_iter())
            .unwrap();
        assert_eq!(got, want);
        nothing_pending(&s);
        let (got, want) = (numbers(&s), numbers(&streamed));
        assert_eq!((&got.1, got.2), (&want.1, want.2), "groups and counters");
        assert!(got.0 == want.0, "users");
        let big = s.group_by_name("big").unwrap().unwrap();
        assert_eq!(big.gid_number, first + 1, "the first free gidNumber");
        assert_eq!(s.members(big.id).unwrap().len(), 3);
        let late = s.user_by_name(&bulk_name(MANY + 2)).unwrap().unwrap();
        assert_eq!(late.uid_number, first + MANY as u32 + 2);
    }

    #[test]
    fn an_import_abandoned_or_dropped_after_its_first_users_leaves_the_store_as_it_was() {
        for seed in [false, true] {
            for drop_it in [false, true] {
                let s = SledStore::temporary().unwrap();
                if seed {
                    seeded(&s);
                }
                let before = s.import_trees();
                let epoch = s.stored_epoch().unwrap();
                let mut bulk = s.bulk_import(BatchMode::Merge).unwrap();
                bulk.users(&mut fixed(1..=MANY, 30_000).into_iter())
                    .unwrap();
                assert_eq!(s.t.users.len(), MANY + usize::from(seed), "written");
                if drop_it {
                    drop(bulk);
                } else {
                    Box::new(bulk).abandon().unwrap();
                }
                nothing_pending(&s);
                assert!(
                    s.import_trees() == before,
                    "seeded {seed}, dropped {drop_it}"
                );
                assert_eq!(s.stored_epoch().unwrap(), epoch);

                // And the same import again, committed.
                let mut bulk = s.bulk_import(BatchMode::Merge).unwrap();
                bulk.users(&mut fixed(1..=MANY, 30_000).into_iter())
                    .unwrap();
                let batch = Batch {
                    next_uid: Some(30_000 + MANY as u32 + 1),
                    ..Batch::default()
                };
                let report = Box::new(bulk)
                    .commit(&batch, &mut std::iter::empty())
                    .unwrap();
                assert_eq!(report.users_created.len(), MANY);
                nothing_pending(&s);
            }
        }
    }

    #[test]
    fn a_conflict_before_the_head_undoes_the_import_at_once() {
        // The last user takes old's email: found after chunks were
        // written, undone by the call that found it.
        let s = SledStore::temporary().unwrap();
        seeded(&s);
        let before = s.import_trees();
        let mut bulk = s.bulk_import(BatchMode::Merge).unwrap();
        let mut users = fixed(1..=MANY, 30_000);
        if let Some(Ok(last)) = users.last_mut() {
            last.user.email = Some("OLD@example.com".into());
        }
        let err = bulk.users(&mut users.into_iter()).unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
        nothing_pending(&s);
        assert!(s.import_trees() == before);
        // The import is over.
        let err = bulk.users(&mut std::iter::empty()).unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        let err = Box::new(bulk)
            .commit(&Batch::default(), &mut std::iter::empty())
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        assert!(s.import_trees() == before);
    }

    #[test]
    fn a_user_to_number_before_the_head_is_refused_and_undone() {
        let s = SledStore::temporary().unwrap();
        seeded(&s);
        let before = s.import_trees();
        let mut bulk = s.bulk_import(BatchMode::Merge).unwrap();
        let mut users = fixed(1..=MANY, 30_000);
        users.push(Ok(bulk_user(MANY + 1, None)));
        let err = bulk.users(&mut users.into_iter()).unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        nothing_pending(&s);
        assert!(s.import_trees() == before);
    }

    #[test]
    fn a_commit_that_fails_undoes_the_users_written_before_it() {
        // A batch of the other mode, and a new group whose gidNumber an
        // existing group holds: both refused, nothing left.
        let s = SledStore::temporary().unwrap();
        seeded(&s);
        let staff = s.group_by_name("staff").unwrap().unwrap();
        let before = s.import_trees();
        let mut clash = batch_group("clash");
        clash.allocate_gid = false;
        clash.group.gid_number = staff.gid_number;
        for batch in [
            Batch {
                mode: BatchMode::Restore,
                ..Batch::default()
            },
            Batch {
                groups: vec![clash],
                ..Batch::default()
            },
        ] {
            let mut bulk = s.bulk_import(BatchMode::Merge).unwrap();
            bulk.users(&mut fixed(1..=MANY, 30_000).into_iter())
                .unwrap();
            let err = Box::new(bulk)
                .commit(&batch, &mut std::iter::empty())
                .unwrap_err();
            assert!(
                matches!(err, StoreError::Invalid(_) | StoreError::AlreadyExists(_)),
                "{err}"
            );
            nothing_pending(&s);
            assert!(s.import_trees() == before);
        }
    }

    #[test]
    fn an_import_cut_short_after_its_first_users_is_undone_when_the_store_opens() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let s = SledStore::open(dir.path()).unwrap();
            seeded(&s);
            let before = s.import_trees();
            let mut bulk = s.bulk_import(BatchMode::Merge).unwrap();
            bulk.users(&mut fixed(1..=MANY, 30_000).into_iter())
                .unwrap();
            // As if the process died: no undo, no commit.
            std::mem::forget(bulk);
            s.flush().unwrap();
            before
        };
        let s = SledStore::open(dir.path()).unwrap();
        nothing_pending(&s);
        assert!(s.import_trees() == before);
        assert!(s.user_by_name(&bulk_name(1)).unwrap().is_none());
    }
}
