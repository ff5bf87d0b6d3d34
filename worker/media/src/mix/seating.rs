//! Who shows in which pane: stable seats in join order, pinned panes, and the main pane of
//! the screen-share layouts. Pure: a roster and a layout in, pane ids out.
//!
//! Pane ids count from 1: grid cells in row-major order; in the screen-share layouts pane 1
//! is the large one and panes 2… the column, top to bottom. A seat is one participant
//! stream: a user's camera and screen share are seated apart.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::geometry::{MAX_GRID_PANES, MAX_SCREEN_SHARE_PANES};
use crate::{LayoutKind, Pin};

/// What the seating needs to know of a participant stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member<'a> {
    pub user_id: &'a str,
    pub screen_share: bool,
}

/// A participant stream's identity: its user and whether it is their screen share.
type Key<'a> = (&'a str, bool);

impl<'a> Member<'a> {
    fn key(&self) -> Key<'a> {
        (self.user_id, self.screen_share)
    }
}

/// The panes of one layout: how many to lay out, and who sits in which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seats {
    /// Grid: the number of cells. Screen share: the number of panes in the column.
    pub panes: u32,
    /// Pane id → index in the roster.
    pub occupants: BTreeMap<u32, usize>,
}

/// Remembers who sits where, so a roster or layout change moves nobody who can stay.
#[derive(Debug, Default)]
pub(crate) struct Seating {
    kind: Option<LayoutKind>,
    seats: HashMap<(String, bool), u32>,
}

impl Seating {
    /// Seats `roster` (in join order) in a `kind` layout with `pinned` panes.
    ///
    /// A pinned pane is kept for its stream (empty while it is away). In the screen-share
    /// layouts the large pane shows the stream pinned there and nothing else (seed 004: the
    /// specified user, else the background); the same user's other stream may sit in the
    /// column. Everyone else keeps their seat if it is still free, and newcomers take the
    /// lowest free pane, in join order; who finds none is not shown.
    pub(crate) fn seat(&mut self, kind: LayoutKind, pinned: &[Pin], roster: &[Member]) -> Seats {
        let (first, last) = match kind {
            LayoutKind::Grid => (1, MAX_GRID_PANES),
            LayoutKind::ScreenShareLeft | LayoutKind::ScreenShareRight => (2, MAX_SCREEN_SHARE_PANES),
        };
        if self.kind != Some(kind) {
            // Pane ids mean other places in another layout: seat everyone afresh.
            self.seats.clear();
            self.kind = Some(kind);
        }
        let reserved = reservations(pinned, last);
        let pinned_pane = |key: Key| reserved.iter().find(|(_, k)| *k == key).map(|(p, _)| *p);
        let mut occupants = BTreeMap::new();
        let mut seated: HashSet<Key> = HashSet::new();
        if first > 1 {
            let main = reserved.iter().find(|(pane, _)| *pane == 1);
            if let Some(index) = main.and_then(|(_, key)| roster.iter().position(|m| m.key() == *key)) {
                occupants.insert(1, index);
                seated.insert(roster[index].key());
            }
        }
        for (index, member) in roster.iter().enumerate() {
            if let Some(pane) = pinned_pane(member.key()).filter(|p| *p >= first) {
                if seated.insert(member.key()) {
                    occupants.insert(pane, index);
                }
            }
        }
        let is_free = |pane: u32, occupants: &BTreeMap<u32, usize>| {
            !occupants.contains_key(&pane) && !reserved.iter().any(|(p, _)| *p == pane)
        };
        let mut waiting = Vec::new();
        for (index, member) in roster.iter().enumerate() {
            if !seated.insert(member.key()) {
                continue;
            }
            match self.seats.get(&(member.user_id.to_owned(), member.screen_share)) {
                Some(&pane) if (first..=last).contains(&pane) && is_free(pane, &occupants) => {
                    occupants.insert(pane, index);
                }
                _ => waiting.push(index),
            }
        }
        for index in waiting {
            if let Some(pane) = (first..=last).find(|&pane| is_free(pane, &occupants)) {
                occupants.insert(pane, index);
            }
        }
        self.seats = occupants
            .iter()
            .map(|(&pane, &index)| ((roster[index].user_id.to_owned(), roster[index].screen_share), pane))
            .collect();
        let highest = occupants.keys().chain(reserved.iter().map(|(p, _)| p)).copied().max().unwrap_or(0);
        let panes = if first == 1 {
            (seated.len() as u32).min(last).max(highest)
        } else {
            let column = occupants.keys().filter(|&&p| p >= first).count() as u32;
            column.max(highest.saturating_sub(1))
        };
        Seats { panes, occupants }
    }
}

/// The valid pins (pane ids 1..=`last`), the first one winning for a pane and for a stream.
fn reservations(pinned: &[Pin], last: u32) -> Vec<(u32, Key<'_>)> {
    let mut reserved: Vec<(u32, Key)> = Vec::new();
    for pin in pinned {
        let key = (pin.user_id.as_str(), pin.screen_share);
        let taken = reserved.iter().any(|(p, k)| *p == pin.pane || *k == key);
        if (1..=last).contains(&pin.pane) && !taken {
            reserved.push((pin.pane, key));
        }
    }
    reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cameras<'a>(users: &[&'a str]) -> Vec<Member<'a>> {
        users.iter().map(|user_id| Member { user_id, screen_share: false }).collect()
    }

    /// Pane id → user id.
    fn who(seats: &Seats, roster: &[Member]) -> Vec<(u32, String)> {
        seats.occupants.iter().map(|(&pane, &i)| (pane, roster[i].user_id.to_owned())).collect()
    }

    fn panes(list: &[(u32, &str)]) -> Vec<(u32, String)> {
        list.iter().map(|(p, u)| (*p, (*u).to_owned())).collect()
    }

    /// Cameras pinned to panes.
    fn pins(list: &[(u32, &str)]) -> Vec<Pin> {
        list.iter().map(|(pane, user)| Pin { pane: *pane, user_id: (*user).to_owned(), screen_share: false }).collect()
    }

    /// Pane id → (user id, screen share).
    fn streams(seats: &Seats, roster: &[Member]) -> Vec<(u32, (String, bool))> {
        seats
            .occupants
            .iter()
            .map(|(&pane, &i)| (pane, (roster[i].user_id.to_owned(), roster[i].screen_share)))
            .collect()
    }

    #[test]
    fn participants_fill_the_grid_in_join_order() {
        let roster = cameras(&["a", "b", "c"]);
        let seats = Seating::default().seat(LayoutKind::Grid, &[], &roster);
        assert_eq!(who(&seats, &roster), panes(&[(1, "a"), (2, "b"), (3, "c")]));
        assert_eq!(seats.panes, 3);
    }

    #[test]
    fn a_leaver_frees_their_pane_for_the_next_joiner_and_nobody_else_moves() {
        let mut seating = Seating::default();
        seating.seat(LayoutKind::Grid, &[], &cameras(&["a", "b", "c"]));
        let after_leave = cameras(&["a", "c"]);
        let seats = seating.seat(LayoutKind::Grid, &[], &after_leave);
        assert_eq!(who(&seats, &after_leave), panes(&[(1, "a"), (3, "c")]));
        assert_eq!(seats.panes, 3, "the grid keeps its shape while pane 2 is empty");
        let after_join = cameras(&["a", "c", "d"]);
        let seats = seating.seat(LayoutKind::Grid, &[], &after_join);
        assert_eq!(who(&seats, &after_join), panes(&[(1, "a"), (2, "d"), (3, "c")]));
    }

    #[test]
    fn the_grid_shrinks_when_the_last_pane_empties() {
        let mut seating = Seating::default();
        seating.seat(LayoutKind::Grid, &[], &cameras(&["a", "b", "c", "d", "e"]));
        let seats = seating.seat(LayoutKind::Grid, &[], &cameras(&["a", "b", "c", "d"]));
        assert_eq!(seats.panes, 4);
    }

    #[test]
    fn a_pinned_pane_waits_empty_for_its_user_and_the_others_sit_around_it() {
        let mut seating = Seating::default();
        let pins = pins(&[(1, "boss")]);
        let roster = cameras(&["a", "b"]);
        let seats = seating.seat(LayoutKind::Grid, &pins, &roster);
        assert_eq!(who(&seats, &roster), panes(&[(2, "a"), (3, "b")]));
        assert_eq!(seats.panes, 3);
        let roster = cameras(&["a", "b", "boss"]);
        let seats = seating.seat(LayoutKind::Grid, &pins, &roster);
        assert_eq!(who(&seats, &roster), panes(&[(1, "boss"), (2, "a"), (3, "b")]));
    }

    #[test]
    fn pinning_a_taken_pane_moves_its_holder_to_the_lowest_free_one() {
        let mut seating = Seating::default();
        seating.seat(LayoutKind::Grid, &[], &cameras(&["a", "b", "c"]));
        let roster = cameras(&["a", "b", "c"]);
        let seats = seating.seat(LayoutKind::Grid, &pins(&[(1, "c")]), &roster);
        assert_eq!(who(&seats, &roster), panes(&[(1, "c"), (2, "b"), (3, "a")]));
    }

    #[test]
    fn a_pin_to_a_high_pane_widens_the_grid_to_reach_it() {
        let roster = cameras(&["a"]);
        let seats = Seating::default().seat(LayoutKind::Grid, &pins(&[(9, "a")]), &roster);
        assert_eq!(who(&seats, &roster), panes(&[(9, "a")]));
        assert_eq!(seats.panes, 9);
    }

    #[test]
    fn more_than_twenty_five_are_not_shown_until_a_pane_frees() {
        let owned: Vec<String> = (0..27).map(|i| format!("u{i}")).collect();
        let names: Vec<&str> = owned.iter().map(String::as_str).collect();
        let mut seating = Seating::default();
        let roster = cameras(&names);
        let seats = seating.seat(LayoutKind::Grid, &[], &roster);
        assert_eq!(seats.occupants.len(), 25);
        assert_eq!(seats.panes, 25);
        let mut fewer = names.clone();
        fewer.remove(3);
        let roster = cameras(&fewer);
        let seats = seating.seat(LayoutKind::Grid, &[], &roster);
        assert_eq!(who(&seats, &roster)[3], (4, "u25".to_owned()), "the first one waiting takes the freed pane");
    }

    #[test]
    fn an_unpinned_screen_share_sits_in_the_column_and_the_large_pane_stays_empty() {
        let roster = vec![
            Member { user_id: "a", screen_share: false },
            Member { user_id: "s", screen_share: true },
            Member { user_id: "b", screen_share: false },
        ];
        let seats = Seating::default().seat(LayoutKind::ScreenShareLeft, &[], &roster);
        assert_eq!(who(&seats, &roster), panes(&[(2, "a"), (3, "s"), (4, "b")]));
        assert_eq!(seats.panes, 3);
    }

    #[test]
    fn a_pinned_screen_share_fills_the_large_pane_and_its_users_camera_sits_in_the_column() {
        let roster = vec![
            Member { user_id: "a", screen_share: false },
            Member { user_id: "t", screen_share: false },
            Member { user_id: "t", screen_share: true },
        ];
        let screen = [Pin { pane: 1, user_id: "t".into(), screen_share: true }];
        let seats = Seating::default().seat(LayoutKind::ScreenShareLeft, &screen, &roster);
        let expected = [(1, ("t".to_owned(), true)), (2, ("a".to_owned(), false)), (3, ("t".to_owned(), false))];
        assert_eq!(streams(&seats, &roster), expected);
        let camera = pins(&[(1, "t")]);
        let seats = Seating::default().seat(LayoutKind::ScreenShareLeft, &camera, &roster);
        let expected = [(1, ("t".to_owned(), false)), (2, ("a".to_owned(), false)), (3, ("t".to_owned(), true))];
        assert_eq!(streams(&seats, &roster), expected);
    }

    #[test]
    fn a_pinned_screen_share_not_yet_shared_leaves_the_large_pane_empty_though_its_user_is_in() {
        let roster = vec![Member { user_id: "t", screen_share: false }];
        let screen = [Pin { pane: 1, user_id: "t".into(), screen_share: true }];
        let seats = Seating::default().seat(LayoutKind::ScreenShareRight, &screen, &roster);
        assert_eq!(streams(&seats, &roster), [(2, ("t".to_owned(), false))]);
    }

    #[test]
    fn the_user_pinned_to_pane_one_takes_the_large_pane_before_any_screen_share() {
        let roster = vec![Member { user_id: "a", screen_share: false }, Member { user_id: "s", screen_share: true }];
        let seats = Seating::default().seat(LayoutKind::ScreenShareRight, &pins(&[(1, "a")]), &roster);
        assert_eq!(who(&seats, &roster), panes(&[(1, "a"), (2, "s")]));
    }

    #[test]
    fn without_a_main_user_the_large_pane_stays_empty() {
        let roster = cameras(&["a", "b"]);
        let seats = Seating::default().seat(LayoutKind::ScreenShareLeft, &[], &roster);
        assert_eq!(who(&seats, &roster), panes(&[(2, "a"), (3, "b")]));
        let absent = Seating::default().seat(LayoutKind::ScreenShareLeft, &pins(&[(1, "gone")]), &roster);
        assert_eq!(who(&absent, &roster), panes(&[(2, "a"), (3, "b")]));
    }

    #[test]
    fn the_screen_share_layouts_show_at_most_sixteen_small_panes() {
        let owned: Vec<String> = (0..20).map(|i| format!("u{i}")).collect();
        let names: Vec<&str> = owned.iter().map(String::as_str).collect();
        let seats = Seating::default().seat(LayoutKind::ScreenShareLeft, &[], &cameras(&names));
        assert_eq!(seats.occupants.len(), 16);
        assert_eq!(seats.panes, 16);
        assert!(!seats.occupants.contains_key(&1));
    }

    #[test]
    fn switching_layouts_seats_everyone_afresh_in_join_order() {
        let mut seating = Seating::default();
        seating.seat(LayoutKind::Grid, &[], &cameras(&["a", "b", "c"]));
        seating.seat(LayoutKind::Grid, &[], &cameras(&["a", "c"]));
        let roster = cameras(&["a", "c"]);
        let seats = seating.seat(LayoutKind::ScreenShareLeft, &[], &roster);
        assert_eq!(who(&seats, &roster), panes(&[(2, "a"), (3, "c")]));
    }
}
