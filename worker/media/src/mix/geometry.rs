//! Where the panes of a layout lie on the canvas, and how a picture fills its pane. Pure
//! arithmetic: every canvas rectangle has even edges, as 4:2:0 chroma needs.

/// A rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    /// Width and height.
    pub(crate) fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

/// How a picture fills its pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Fill {
    /// Scaled to cover the pane, the overflow cropped evenly on both sides.
    Cover,
    /// Scaled to fit inside the pane whole; the rest of the pane shows the background.
    Fit,
}

/// Which side of the canvas the large pane of a screen-share layout is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Left,
    Right,
}

/// Most panes of the grid layout (5×5).
pub(crate) const MAX_GRID_PANES: u32 = 25;
/// Most panes of a screen-share layout: the large one and 16 in the column.
pub(crate) const MAX_SCREEN_SHARE_PANES: u32 = 17;
/// The column of a screen-share layout is this fraction of the canvas width (1/5).
const COLUMN_WIDTH_DIVISOR: u32 = 5;
/// The column has at least this many rows, so a few small panes stay small.
const MIN_COLUMN_ROWS: u32 = 4;

/// Columns × rows of a grid of `cells` cells (nine_grids_view: 1×1, 2×1, 2×2, 3×2, 3×3,
/// 4×3, 4×4, 5×4, 5×5).
pub(crate) fn grid_shape(cells: u32) -> (u32, u32) {
    match cells {
        0 | 1 => (1, 1),
        2 => (2, 1),
        3..=4 => (2, 2),
        5..=6 => (3, 2),
        7..=9 => (3, 3),
        10..=12 => (4, 3),
        13..=16 => (4, 4),
        17..=20 => (5, 4),
        _ => (5, 5),
    }
}

/// Every cell of the grid for `cells` panes on `canvas`, in row-major order (pane id =
/// position + 1). No cells for no panes.
pub(crate) fn grid(canvas: (u32, u32), cells: u32) -> Vec<Rect> {
    if cells == 0 {
        return Vec::new();
    }
    let (columns, rows) = grid_shape(cells.min(MAX_GRID_PANES));
    let xs = splits(canvas.0, columns);
    let ys = splits(canvas.1, rows);
    let mut rects = Vec::with_capacity((columns * rows) as usize);
    for y in ys.windows(2) {
        for x in xs.windows(2) {
            rects.push(Rect { x: x[0], y: y[0], width: x[1] - x[0], height: y[1] - y[0] });
        }
    }
    rects
}

/// The large pane (pane 1) and `small` column panes (panes 2, 3…, top to bottom) of a
/// screen-share layout with the large pane on `side`.
pub(crate) fn screen_share(canvas: (u32, u32), side: Side, small: u32) -> (Rect, Vec<Rect>) {
    let (width, height) = canvas;
    let column_width = even_round(f64::from(width) / f64::from(COLUMN_WIDTH_DIVISOR)).min(even(width));
    let rows = small.max(MIN_COLUMN_ROWS);
    let row_height = even(height / rows);
    let large_width = width - column_width;
    let (large_x, column_x) = match side {
        Side::Left => (0, large_width),
        Side::Right => (column_width, 0),
    };
    let large = Rect { x: large_x, y: 0, width: large_width, height };
    let column = (0..small.min(MAX_SCREEN_SHARE_PANES - 1))
        .map(|row| Rect { x: column_x, y: row * row_height, width: column_width, height: row_height })
        .collect();
    (large, column)
}

/// How a picture of size `source` goes into a pane of size `pane`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    /// The part of the source shown, in source pixels.
    pub crop: Rect,
    /// The size the shown part is scaled to.
    pub size: (u32, u32),
    /// Where the scaled picture's top left corner sits in the pane.
    pub offset: (u32, u32),
}

/// Places `source` in `pane` with `fill`: [`Fill::Cover`] crops the source to the pane's
/// aspect ratio around its centre, [`Fill::Fit`] keeps it whole and centres it.
pub(crate) fn place(source: (u32, u32), pane: (u32, u32), fill: Fill) -> Placement {
    let (sw, sh) = source;
    let (pw, ph) = pane;
    let whole = Rect { x: 0, y: 0, width: sw, height: sh };
    if sw == 0 || sh == 0 || pw == 0 || ph == 0 {
        return Placement { crop: whole, size: pane, offset: (0, 0) };
    }
    // Compare the aspect ratios exactly: sw/sh against pw/ph.
    let wider = u64::from(sw) * u64::from(ph) > u64::from(pw) * u64::from(sh);
    match fill {
        Fill::Cover => {
            let crop = if wider {
                let width = even_round(f64::from(sh) * f64::from(pw) / f64::from(ph)).clamp(2, sw);
                Rect { x: even((sw - width) / 2), width, ..whole }
            } else {
                let height = even_round(f64::from(sw) * f64::from(ph) / f64::from(pw)).clamp(2, sh);
                Rect { y: even((sh - height) / 2), height, ..whole }
            };
            Placement { crop, size: pane, offset: (0, 0) }
        }
        Fill::Fit => {
            let size = if wider {
                (pw, even_round(f64::from(pw) * f64::from(sh) / f64::from(sw)).clamp(2, ph))
            } else {
                (even_round(f64::from(ph) * f64::from(sw) / f64::from(sh)).clamp(2, pw), ph)
            };
            Placement { crop: whole, size, offset: (even((pw - size.0) / 2), even((ph - size.1) / 2)) }
        }
    }
}

/// `n + 1` even boundaries cutting `length` into `n` near-equal parts.
fn splits(length: u32, n: u32) -> Vec<u32> {
    (0..=n).map(|i| if i == n { even(length) } else { even(i * length / n) }).collect()
}

/// `value` rounded down to even.
fn even(value: u32) -> u32 {
    value & !1
}

/// `value` rounded to the nearest even integer.
fn even_round(value: f64) -> u32 {
    ((value / 2.0).round() as u32) * 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
        Rect { x, y, width, height }
    }

    #[test]
    fn the_grid_shape_grows_with_the_number_of_panes_as_nine_grids_view_does() {
        let shapes: Vec<(u32, u32)> = (1..=25).map(grid_shape).collect();
        let expected = [
            (1, 1),
            (2, 1),
            (2, 2),
            (2, 2),
            (3, 2),
            (3, 2),
            (3, 3),
            (3, 3),
            (3, 3),
            (4, 3),
            (4, 3),
            (4, 3),
            (4, 4),
            (4, 4),
            (4, 4),
            (4, 4),
            (5, 4),
            (5, 4),
            (5, 4),
            (5, 4),
            (5, 5),
            (5, 5),
            (5, 5),
            (5, 5),
            (5, 5),
        ];
        assert_eq!(shapes, expected);
    }

    #[test]
    fn two_panes_sit_side_by_side_and_four_make_a_two_by_two_grid() {
        assert_eq!(grid((640, 360), 1), [rect(0, 0, 640, 360)]);
        assert_eq!(grid((640, 360), 2), [rect(0, 0, 320, 360), rect(320, 0, 320, 360)]);
        assert_eq!(
            grid((640, 360), 3),
            [rect(0, 0, 320, 180), rect(320, 0, 320, 180), rect(0, 180, 320, 180), rect(320, 180, 320, 180)]
        );
        assert!(grid((640, 360), 0).is_empty());
    }

    #[test]
    fn grid_cells_tile_the_canvas_with_even_edges_for_every_count() {
        for canvas in [(1920, 1080), (640, 360), (1280, 720), (854, 480)] {
            for cells in 1..=25 {
                let rects = grid(canvas, cells);
                let (columns, rows) = grid_shape(cells);
                assert_eq!(rects.len() as u32, columns * rows);
                let area: u32 = rects.iter().map(|r| r.width * r.height).sum();
                assert_eq!(area, canvas.0 * canvas.1, "{canvas:?} {cells}");
                for r in &rects {
                    assert!([r.x, r.y, r.width, r.height].iter().all(|v| v % 2 == 0), "{r:?}");
                    assert!(r.x + r.width <= canvas.0 && r.y + r.height <= canvas.1);
                }
                // Row-major: each next cell is to the right, or starts the next row.
                for pair in rects.windows(2) {
                    assert!(pair[1].x > pair[0].x || (pair[1].x == 0 && pair[1].y > pair[0].y), "{pair:?}");
                }
            }
        }
    }

    #[test]
    fn screen_share_left_puts_the_large_pane_left_and_a_column_of_at_least_four_rows_right() {
        let (large, column) = screen_share((640, 360), Side::Left, 2);
        assert_eq!(large, rect(0, 0, 512, 360));
        assert_eq!(column, [rect(512, 0, 128, 90), rect(512, 90, 128, 90)]);
        let (large, column) = screen_share((1920, 1080), Side::Left, 6);
        assert_eq!(large, rect(0, 0, 1536, 1080));
        assert_eq!(column.len(), 6);
        assert_eq!(column[5], rect(1536, 900, 384, 180));
    }

    #[test]
    fn screen_share_right_mirrors_it() {
        let (large, column) = screen_share((640, 360), Side::Right, 1);
        assert_eq!(large, rect(128, 0, 512, 360));
        assert_eq!(column, [rect(0, 0, 128, 90)]);
        let (_, column) = screen_share((640, 360), Side::Right, 30);
        assert_eq!(column.len(), 16, "at most 16 small panes");
        assert!(column.iter().all(|r| r.y + r.height <= 360));
    }

    #[test]
    fn cover_crops_the_overflow_around_the_centre() {
        let wide_into_tall = place((640, 360), (320, 360), Fill::Cover);
        assert_eq!(wide_into_tall, Placement { crop: rect(160, 0, 320, 360), size: (320, 360), offset: (0, 0) });
        let tall_into_wide = place((360, 640), (640, 360), Fill::Cover);
        assert_eq!(tall_into_wide.crop, rect(0, 218, 360, 202));
        let same_aspect = place((640, 360), (384, 216), Fill::Cover);
        assert_eq!(same_aspect.crop, rect(0, 0, 640, 360));
        assert_eq!(same_aspect.size, (384, 216));
    }

    #[test]
    fn fit_keeps_the_whole_picture_and_centres_it_with_bars() {
        let letterbox = place((640, 360), (512, 360), Fill::Fit);
        assert_eq!(letterbox, Placement { crop: rect(0, 0, 640, 360), size: (512, 288), offset: (0, 36) });
        let pillarbox = place((360, 640), (512, 360), Fill::Fit);
        assert_eq!(pillarbox.size, (202, 360));
        assert_eq!(pillarbox.offset, (154, 0));
    }

    #[test]
    fn a_source_of_unknown_size_fills_the_pane_uncropped() {
        let placement = place((0, 0), (320, 180), Fill::Fit);
        assert_eq!(placement.size, (320, 180));
        assert_eq!(placement.crop, rect(0, 0, 0, 0));
    }
}
