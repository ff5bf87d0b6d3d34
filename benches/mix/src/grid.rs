//! The grid layout (`nine_grids_view`) as the `ffmpeg` program draws it: the same panes as the
//! mixer's (worker/media/src/mix/geometry.rs, restated here because it is private to the
//! crate; the tests pin the figures), each participant scaled to cover their pane, stacked
//! with `xstack`.

/// The mix's background (and the colour of empty panes), as `ffmpeg` names a colour.
pub const BACKGROUND: &str = "black";
/// The same colour as RGB, for the mixer.
pub const BACKGROUND_RGB: [u8; 3] = [0, 0, 0];

/// A pane of the canvas, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pane {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Columns × rows of the grid for `cells` panes (1×1, 2×1, 2×2, 3×2, 3×3, 4×3, 4×4, 5×4, 5×5).
pub fn grid_shape(cells: usize) -> (u32, u32) {
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

/// `n + 1` even boundaries cutting `length` into `n` near-equal parts.
fn splits(length: u32, n: u32) -> Vec<u32> {
    (0..=n).map(|i| if i == n { length & !1 } else { (i * length / n) & !1 }).collect()
}

/// The panes of `n` participants on `canvas`, in row-major order (join order fills them).
pub fn panes(canvas: (u32, u32), n: usize) -> Vec<Pane> {
    let (columns, rows) = grid_shape(n);
    let (xs, ys) = (splits(canvas.0, columns), splits(canvas.1, rows));
    let mut panes = Vec::new();
    for y in ys.windows(2) {
        for x in xs.windows(2) {
            panes.push(Pane { x: x[0], y: y[0], width: x[1] - x[0], height: y[1] - y[0] });
        }
    }
    panes.truncate(n);
    panes
}

/// A filter graph fragment: the video of inputs `first_input..first_input + n`, each scaled
/// with `scale_flags` to cover its pane (the overflow cropped evenly), stacked on `canvas`
/// into the pad `[out]`. Empty cells show [`BACKGROUND`].
pub fn compose(canvas: (u32, u32), n: usize, first_input: usize, scale_flags: &str, out: &str) -> String {
    let panes = panes(canvas, n);
    let mut graph = String::new();
    for (i, pane) in panes.iter().enumerate() {
        let (w, h) = (pane.width, pane.height);
        graph.push_str(&format!(
            "[{}:v]scale={w}:{h}:force_original_aspect_ratio=increase:flags={scale_flags},crop={w}:{h},setsar=1[p{i}];",
            first_input + i
        ));
    }
    let pads: String = (0..panes.len()).map(|i| format!("[p{i}]")).collect();
    let layout = panes.iter().map(|p| format!("{}_{}", p.x, p.y)).collect::<Vec<_>>().join("|");
    let (columns, rows) = grid_shape(n);
    // Filling costs a clear of the whole canvas per frame: only when some cell stays empty.
    let fill = if (columns * rows) as usize > n { format!(":fill={BACKGROUND}") } else { String::new() };
    graph.push_str(&format!("{pads}xstack=inputs={n}:layout={layout}{fill}[{out}]"));
    graph
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nine_and_twenty_five_participants_fill_three_and_five_square_grids_of_1080p() {
        let nine = panes((1920, 1080), 9);
        assert_eq!(nine.len(), 9);
        assert!(nine.iter().all(|p| (p.width, p.height) == (640, 360)));
        assert_eq!(nine[4], Pane { x: 640, y: 360, width: 640, height: 360 });
        let twenty_five = panes((1920, 1080), 25);
        assert!(twenty_five.iter().all(|p| (p.width, p.height) == (384, 216)));
        assert_eq!(twenty_five[24], Pane { x: 1536, y: 864, width: 384, height: 216 });
    }

    #[test]
    fn the_grid_grows_as_the_mixers_nine_grids_view_does() {
        let shapes: Vec<(u32, u32)> = [1, 2, 3, 5, 7, 10, 13, 17, 21].into_iter().map(grid_shape).collect();
        assert_eq!(shapes, [(1, 1), (2, 1), (2, 2), (3, 2), (3, 3), (4, 3), (4, 4), (5, 4), (5, 5)]);
        assert_eq!(panes((1920, 1080), 7).len(), 7);
    }

    #[test]
    fn the_graph_scales_every_input_into_its_pane_and_fills_only_a_partial_grid() {
        let graph = compose((1920, 1080), 9, 1, "bilinear", "v");
        assert!(graph.starts_with(
            "[1:v]scale=640:360:force_original_aspect_ratio=increase:flags=bilinear,crop=640:360,setsar=1[p0];"
        ));
        assert!(graph.contains("[9:v]scale=640:360"));
        assert!(
            graph.ends_with("xstack=inputs=9:layout=0_0|640_0|1280_0|0_360|640_360|1280_360|0_720|640_720|1280_720[v]")
        );
        assert!(compose((1920, 1080), 8, 0, "lanczos", "c").contains(":fill=black[c]"));
    }
}
