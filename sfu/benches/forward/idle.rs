//! Idle peers: N subscribers connected to a publisher that stopped sending, so
//! what the SFU does in the window is keep-alives (ICE consent answers), RTCP
//! reports and its timers. Its CPU should grow no faster than N.

use super::Figures;

pub fn print(n: usize, figures: &Figures) {
    let peers = n + 1;
    println!(
        "{:<14} {:>9.4} cores ({:.1} µs CPU per peer per second), {:.0} datagrams in/s, {:.0} out/s, {:.0} RTP out/s",
        format!("idle {n}"),
        figures.cpu_cores,
        figures.cpu_cores * 1e6 / peers as f64,
        figures.datagrams_in_pps,
        figures.datagrams_pps,
        figures.out_pps,
    );
}
