//! Opus in Ogg (RFC 7845): one Opus packet per page, the granule position of
//! each page the 48 kHz sample count at the end of its packet.
//!
//! Written here rather than with `rtc-media`'s `OggWriter`: that one gives a
//! page the granule of its packet's start (a file one frame short), subtracts
//! raw RTP timestamps (a panic on their 32-bit wrap in debug builds, a wrong
//! granule across an SSRC change) and cannot mark the last page without
//! writing a packet twice.

use std::io::{self, Write};

const PRE_SKIP: u16 = 312;
const BEGINNING_OF_STREAM: u8 = 0x02;
const END_OF_STREAM: u8 = 0x04;
/// The stream serial number: one logical stream per file, so any will do.
const SERIAL: u32 = 0x7261_7061;

pub struct OggOpusWriter<W: Write> {
    writer: W,
    page: u32,
    /// The last packet and its granule, held until the next one shows whether it is the end.
    held: Option<(Vec<u8>, u64)>,
    first_sample: Option<u64>,
    end_sample: u64,
}

impl<W: Write> OggOpusWriter<W> {
    pub fn new(mut writer: W) -> io::Result<Self> {
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1); // version
        head.push(2); // channels: WebRTC's Opus is negotiated as stereo
        head.extend_from_slice(&PRE_SKIP.to_le_bytes());
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0); // channel mapping family
        let mut tags = Vec::new();
        tags.extend_from_slice(b"OpusTags");
        let vendor = b"rapat";
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes());
        write_page(&mut writer, &head, BEGINNING_OF_STREAM, 0, 0)?;
        write_page(&mut writer, &tags, 0, 0, 1)?;
        Ok(Self { writer, page: 2, held: None, first_sample: None, end_sample: 0 })
    }

    /// Adds an Opus packet starting at `sample` (48 kHz ticks on the recording's timeline).
    pub fn write_packet(&mut self, packet: &[u8], sample: u64) -> io::Result<()> {
        if packet.is_empty() {
            return Ok(());
        }
        let first = *self.first_sample.get_or_insert(sample);
        let end = sample.saturating_sub(first) + opus_samples(packet);
        self.end_sample = self.end_sample.max(end);
        if let Some((held, granule)) = self.held.take() {
            self.write_held(&held, granule, 0)?;
        }
        self.held = Some((packet.to_vec(), u64::from(PRE_SKIP) + self.end_sample));
        Ok(())
    }

    fn write_held(&mut self, packet: &[u8], granule: u64, flags: u8) -> io::Result<()> {
        write_page(&mut self.writer, packet, flags, granule, self.page)?;
        self.page += 1;
        Ok(())
    }

    /// The audio written so far, in 48 kHz samples.
    pub fn samples(&self) -> u64 {
        self.end_sample
    }

    /// Marks the last page as the end of the stream; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        if let Some((held, granule)) = self.held.take() {
            self.write_held(&held, granule, END_OF_STREAM)?;
        }
        self.writer.flush()?;
        Ok(self.writer)
    }
}

/// How many 48 kHz samples an Opus packet holds (RFC 6716 §3.1); 960 (20 ms)
/// when the packet is too short to say.
pub fn opus_samples(packet: &[u8]) -> u64 {
    let Some(&toc) = packet.first() else { return 960 };
    let config = toc >> 3;
    // Frame sizes in 48 kHz samples, by configuration: SILK, hybrid, CELT.
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => packet.get(1).map_or(1, |count| u64::from(count & 0x3f)),
    };
    frame * frames
}

fn write_page(writer: &mut impl Write, payload: &[u8], flags: u8, granule: u64, page: u32) -> io::Result<()> {
    // One packet per page: at most 255 lacing values of 255 bytes.
    let payload = &payload[..payload.len().min(255 * 255 - 1)];
    let segments = payload.len() / 255 + 1;
    let mut bytes = Vec::with_capacity(27 + segments + payload.len());
    bytes.extend_from_slice(b"OggS");
    bytes.push(0); // version
    bytes.push(flags);
    bytes.extend_from_slice(&granule.to_le_bytes());
    bytes.extend_from_slice(&SERIAL.to_le_bytes());
    bytes.extend_from_slice(&page.to_le_bytes());
    bytes.extend_from_slice(&[0; 4]); // checksum, filled in below
    bytes.push(segments as u8);
    bytes.extend(std::iter::repeat_n(255u8, segments - 1));
    bytes.push((payload.len() % 255) as u8);
    bytes.extend_from_slice(payload);
    let checksum = crc32(&bytes);
    bytes[22..26].copy_from_slice(&checksum.to_le_bytes());
    writer.write_all(&bytes)
}

/// Ogg's CRC-32: polynomial 0x04c11db7, not reflected, initial value 0.
fn crc32(bytes: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u32; 256];
        for (index, entry) in table.iter_mut().enumerate() {
            let mut value = (index as u32) << 24;
            for _ in 0..8 {
                value = if value & 0x8000_0000 != 0 { (value << 1) ^ 0x04c1_1db7 } else { value << 1 };
            }
            *entry = value;
        }
        table
    });
    bytes.iter().fold(0u32, |crc, byte| (crc << 8) ^ table[usize::from((crc >> 24) as u8 ^ byte)])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pages of a file: (flags, granule, page number, payload).
    fn pages(mut bytes: &[u8]) -> Vec<(u8, u64, u32, Vec<u8>)> {
        let mut pages = Vec::new();
        while !bytes.is_empty() {
            assert_eq!(&bytes[..4], b"OggS");
            let segments = usize::from(bytes[26]);
            let size: usize = bytes[27..27 + segments].iter().map(|&lace| usize::from(lace)).sum();
            let length = 27 + segments + size;
            let mut unchecked = bytes[..length].to_vec();
            unchecked[22..26].fill(0);
            assert_eq!(crc32(&unchecked).to_le_bytes(), bytes[22..26], "checksum");
            let granule = u64::from_le_bytes(bytes[6..14].try_into().expect("8 bytes"));
            let page = u32::from_le_bytes(bytes[18..22].try_into().expect("4 bytes"));
            pages.push((bytes[5], granule, page, bytes[27 + segments..length].to_vec()));
            bytes = &bytes[length..];
        }
        pages
    }

    #[test]
    fn pages_carry_the_end_sample_and_the_last_is_marked() {
        let mut writer = OggOpusWriter::new(Vec::new()).expect("headers");
        // TOC 0xf8: CELT, 20 ms, one frame.
        writer.write_packet(&[0xf8, 1, 2, 3], 0).expect("write");
        writer.write_packet(&[0xf8, 4], 960).expect("write");
        writer.write_packet(&[0xf8, 5], 2880).expect("write after a lost packet");
        assert_eq!(writer.samples(), 3840);
        let pages = pages(&writer.finish().expect("finish"));
        assert_eq!(pages.len(), 5);
        assert_eq!(pages[0].0, BEGINNING_OF_STREAM);
        assert!(pages[0].3.starts_with(b"OpusHead"));
        assert!(pages[1].3.starts_with(b"OpusTags"));
        let audio: Vec<_> = pages[2..].iter().map(|(flags, granule, page, _)| (*flags, *granule, *page)).collect();
        let skip = u64::from(PRE_SKIP);
        assert_eq!(audio, [(0, skip + 960, 2), (0, skip + 1920, 3), (END_OF_STREAM, skip + 3840, 4)]);
        assert_eq!(pages[2].3, [0xf8, 1, 2, 3]);
    }

    #[test]
    fn frame_counts_follow_the_toc() {
        assert_eq!(opus_samples(&[0xf8]), 960);
        assert_eq!(opus_samples(&[0x08 | 0x01]), 1920, "SILK 20 ms, two frames");
        assert_eq!(opus_samples(&[0xfb, 0x03]), 2880, "CELT 20 ms, three frames");
        assert_eq!(opus_samples(&[]), 960);
    }

    #[test]
    fn a_payload_of_a_multiple_of_255_bytes_ends_with_a_zero_lace() {
        let mut bytes = Vec::new();
        write_page(&mut bytes, &[7; 255], 0, 0, 0).expect("write");
        assert_eq!(bytes[26], 2);
        assert_eq!(&bytes[27..29], &[255, 0]);
        assert_eq!(pages(&bytes)[0].3.len(), 255);
    }
}
