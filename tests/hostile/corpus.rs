//! The hostile corpus (issue #19): files made to break an image decoder, a weights reader, a
//! label list or an adapter/gallery reader, each with what fieldclip must do with it.
//!
//! Made by code, not copied in: `make(dir)` writes every file under `dir` and returns the cases.
//! Used by `tests/hostile.rs` (through the CLI) and by `examples/hostile_corpus.rs`, which
//! writes the corpus and its `cases.json` for the page's end-to-end test.
#![allow(dead_code)]

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageBuffer, Rgb, Rgba};
use serde::Serialize;
use serde_json::{json, Value};

/// What a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Image,
    Weights,
    Labels,
    Adapter,
    Gallery,
}

/// What must happen to a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "outcome", content = "message")]
pub enum Expect {
    /// Used as a good file: a photo is classified, a label list is used, ...
    Accepted,
    /// Refused alone, with a message containing this text; everything else goes on.
    Refused(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Case {
    /// The file's name under the corpus folder.
    pub file: String,
    pub kind: Kind,
    /// What the file is, in a few words.
    pub what: String,
    pub expect: Expect,
    /// Only natively (a FIFO, a link to a device, a sparse file of gigabytes): a browser's file
    /// picker cannot hand these to a page.
    pub native_only: bool,
}

/// The tiny oracle model the corpus is made for (its id and embedding size go into adapters
/// and galleries).
pub struct Model {
    pub id: String,
    pub dim: usize,
    pub weights: Vec<u8>,
}

impl Model {
    pub fn tiny(repo: &Path) -> Self {
        let weights = std::fs::read(repo.join("tests/data/tiny/model.safetensors")).unwrap();
        let config = std::fs::read(repo.join("tests/data/tiny/config.json")).unwrap();
        let loaded = fieldclip::weights::load(&weights, Some(&config)).unwrap();
        let id = format!("{} {}", loaded.info.name, loaded.sampled_digest);
        Self { id, dim: loaded.info.config.projection_dim, weights }
    }
}

const NOT_AN_IMAGE: &str = "not an image fieldclip can read";
const DAMAGED: &str = "could not be decoded";
const TOO_MANY_PIXELS: &str = "the limit is 50 megapixels";
const TOO_THIN: &str = "Crop it first";

struct Corpus {
    dir: PathBuf,
    cases: Vec<Case>,
}

impl Corpus {
    fn add(&mut self, file: &str, kind: Kind, what: &str, expect: Expect, bytes: &[u8]) {
        std::fs::write(self.dir.join(file), bytes).unwrap();
        self.note(file, kind, what, expect, false);
    }

    fn note(&mut self, file: &str, kind: Kind, what: &str, expect: Expect, native_only: bool) {
        self.cases.push(Case { file: file.into(), kind, what: what.into(), expect, native_only });
    }

    fn image(&mut self, file: &str, what: &str, expect: Expect, bytes: &[u8]) {
        self.add(file, Kind::Image, what, expect, bytes);
    }
}

fn refused(text: &str) -> Expect {
    Expect::Refused(text.into())
}

/// Writes the corpus under `dir` (created) and returns its cases.
pub fn make(dir: &Path, model: &Model) -> Vec<Case> {
    std::fs::create_dir_all(dir).unwrap();
    let mut c = Corpus { dir: dir.to_path_buf(), cases: Vec::new() };
    images(&mut c);
    weights(&mut c, &model.weights);
    labels(&mut c);
    adapters_and_galleries(&mut c, model);
    std::fs::write(dir.join("cases.json"), serde_json::to_vec_pretty(&c.cases).unwrap()).unwrap();
    c.cases
}

// ---- images ----

fn gradient(w: u32, h: u32) -> image::RgbImage {
    ImageBuffer::from_fn(w, h, |x, y| Rgb([(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, ((x + y) % 256) as u8]))
}

fn encode(image: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    encode(&DynamicImage::ImageRgb8(gradient(w, h)), image::ImageFormat::Jpeg)
}

fn png(w: u32, h: u32) -> Vec<u8> {
    encode(&DynamicImage::ImageRgb8(gradient(w, h)), image::ImageFormat::Png)
}

/// The CRC-32 of PNG chunks (ISO 3309).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    out
}

/// A PNG whose header says `w × h` (CRC correct), followed by the IDAT of a small real image.
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let real = png(8, 8);
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = real[..8].to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    out.extend_from_slice(&real[8 + 25..]);
    out
}

/// A JPEG with an EXIF APP1 segment whose orientation tag is `orientation` (little-endian TIFF);
/// `ifd_offset` lets the IFD point anywhere.
fn jpeg_with_exif(orientation: u16, ifd_offset: u32) -> Vec<u8> {
    let base = jpeg(40, 30);
    let mut tiff = b"II*\0".to_vec();
    tiff.extend_from_slice(&ifd_offset.to_le_bytes());
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut out = base[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend_from_slice(&base[2..]);
    out
}

/// Replaces the first SOF0 frame size of a JPEG.
fn jpeg_declaring(w: u16, h: u16) -> Vec<u8> {
    let mut bytes = jpeg(16, 16);
    let sof = bytes.windows(2).position(|m| m == [0xff, 0xc0]).unwrap();
    bytes[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    bytes
}

fn images(c: &mut Corpus) {
    let ok = Expect::Accepted;
    let good_jpeg = jpeg(64, 48);
    let good_png = png(64, 48);

    c.image("empty.jpg", "0 bytes", refused(NOT_AN_IMAGE), &[]);
    c.image("jpeg-header-only.jpg", "the first 100 bytes of a JPEG", refused(DAMAGED), &good_jpeg[..100]);
    c.image("jpeg-half.jpg", "a JPEG cut in half", refused(DAMAGED), &good_jpeg[..good_jpeg.len() / 2]);
    c.image("jpeg-no-end-marker.jpg", "a JPEG without its end marker (it may be cut off: refused as damaged)", refused(DAMAGED), &good_jpeg[..good_jpeg.len() - 2]);
    let mut scrambled = good_jpeg.clone();
    let sos = scrambled.windows(2).position(|m| m == [0xff, 0xda]).unwrap();
    for b in &mut scrambled[sos + 20..sos + 60] {
        *b = 0xff;
    }
    c.image("jpeg-scan-0xff.jpg", "a JPEG whose scan data holds a run of 0xFF (marker bytes)", refused(DAMAGED), &scrambled);
    c.image("jpeg-declares-60000x60000.jpg", "a decompression bomb: a JPEG frame header of 60000×60000", refused(TOO_MANY_PIXELS), &jpeg_declaring(60000, 60000));
    c.image("jpeg-declares-0-height.jpg", "a JPEG frame header of height 0", refused(DAMAGED), &jpeg_declaring(16, 0));

    let cmyk = {
        let (w, h) = (32u16, 24u16);
        let pixels: Vec<u8> = (0..w as usize * h as usize).flat_map(|i| [(i % 256) as u8, 40, 200, 10]).collect();
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 90).encode(&pixels, w, h, jpeg_encoder::ColorType::Cmyk).unwrap();
        out
    };
    c.image("cmyk.jpg", "a CMYK JPEG (as print workflows write)", ok.clone(), &cmyk);
    c.image("exif-orientation-9.jpg", "EXIF orientation 9 (no such orientation)", ok.clone(), &jpeg_with_exif(9, 8));
    c.image("exif-orientation-65535.jpg", "EXIF orientation 65535", ok.clone(), &jpeg_with_exif(65535, 8));
    c.image("exif-ifd-past-end.jpg", "EXIF whose first directory lies past the end of the segment", ok.clone(), &jpeg_with_exif(6, 0x7fff_fff0));
    c.image("exif-orientation-6.jpg", "EXIF orientation 6 (rotated), a real one", ok.clone(), &jpeg_with_exif(6, 8));

    c.image("png-half.png", "a PNG cut in half", refused(DAMAGED), &good_png[..good_png.len() / 2]);
    let mut bad_crc = good_png.clone();
    let idat = bad_crc.windows(4).position(|m| m == b"IDAT").unwrap();
    bad_crc[idat + 6] ^= 0x55;
    c.image("png-idat-bad-crc.png", "a PNG whose image data was changed (CRC no longer matches)", refused(DAMAGED), &bad_crc);
    let mut bad_ihdr = good_png.clone();
    bad_ihdr[8 + 4 + 4 + 13] ^= 0xff; // the IHDR CRC
    c.image("png-ihdr-bad-crc.png", "a PNG whose header CRC is wrong", refused(DAMAGED), &bad_ihdr);
    c.image("png-declares-60000x60000.png", "a decompression bomb: a PNG header of 60000×60000", refused(TOO_MANY_PIXELS), &png_declaring(60000, 60000));
    c.image("png-declares-0-width.png", "a PNG header of width 0", refused(DAMAGED), &png_declaring(0, 10));
    c.image("strip-1x20000.png", "a 1×20000 strip", refused(TOO_THIN), &png(1, 20000));
    c.image("strip-20000x1.png", "a 20000×1 strip", refused(TOO_THIN), &png(20000, 1));
    c.image("strip-2x600.png", "a 2×600 strip (1 : 300, under the limit)", ok.clone(), &png(2, 600));
    c.image("one-pixel.png", "a single pixel", ok.clone(), &png(1, 1));
    let rgba16: ImageBuffer<Rgba<u16>, Vec<u16>> =
        ImageBuffer::from_fn(40, 30, |x, y| Rgba([(x * 1600) as u16, (y * 2100) as u16, 30000, ((x + y) * 900) as u16]));
    c.image("rgba16.png", "16 bits a channel with alpha", ok.clone(), &encode(&DynamicImage::ImageRgba16(rgba16), image::ImageFormat::Png));
    let gray16: ImageBuffer<image::Luma<u16>, Vec<u16>> = ImageBuffer::from_fn(40, 30, |x, y| image::Luma([(x * y * 50) as u16]));
    c.image("gray16.png", "16-bit grayscale (microscopy)", ok.clone(), &encode(&DynamicImage::ImageLuma16(gray16), image::ImageFormat::Png));
    c.image("apng.png", "an animated PNG (its first frame is used)", ok.clone(), &apng());
    let mut polyglot = good_png.clone();
    polyglot.extend_from_slice(b"PK\x03\x04\x14\0\0\0\0\0");
    polyglot.extend_from_slice(&[0u8; 40]);
    c.image("png-zip-polyglot.png", "a PNG with a zip archive appended", ok.clone(), &polyglot);
    let mut html = good_jpeg.clone();
    html.extend_from_slice(b"<html><script>alert('x')</script></html>");
    c.image("jpeg-html-polyglot.jpg", "a JPEG with an HTML page appended", ok.clone(), &html);

    c.image("gif-js-polyglot.gif", "GIF89a followed by JavaScript", refused(DAMAGED), b"GIF89a/*\x01\x00\x01\x00\x00\x00\x00*/=1;alert('x');");
    let mut gif_bomb = encode(&DynamicImage::ImageRgb8(gradient(8, 8)), image::ImageFormat::Gif);
    gif_bomb[6..8].copy_from_slice(&60000u16.to_le_bytes());
    gif_bomb[8..10].copy_from_slice(&60000u16.to_le_bytes());
    c.image("gif-declares-60000x60000.gif", "a GIF screen of 60000×60000", refused(TOO_MANY_PIXELS), &gif_bomb);
    c.image("animated.gif", "an animated GIF (its first frame is used)", ok.clone(), &animated_gif());
    let gif = encode(&DynamicImage::ImageRgb8(gradient(30, 20)), image::ImageFormat::Gif);
    c.image("gif-half.gif", "a GIF cut in half", refused(DAMAGED), &gif[..gif.len() / 2]);

    let webp = encode(&DynamicImage::ImageRgb8(gradient(30, 20)), image::ImageFormat::WebP);
    c.image("lossless.webp", "a lossless WebP", ok.clone(), &webp);
    c.image("webp-half.webp", "a WebP cut in half", refused(DAMAGED), &webp[..webp.len() / 2]);
    let mut webp_bomb = webp.clone();
    // VP8L: after the 1-byte signature, 14 bits width − 1 and 14 bits height − 1, then alpha
    // and version: 16383 × 16383 (the largest; image-webp wraps 16384 to 0).
    let vp8l = webp_bomb.windows(4).position(|m| m == b"VP8L").unwrap() + 8;
    let header: u32 = 16382 | (16382 << 14);
    webp_bomb[vp8l + 1..vp8l + 5].copy_from_slice(&header.to_le_bytes());
    c.image("webp-declares-16383x16383.webp", "a WebP header of 16383×16383", refused(TOO_MANY_PIXELS), &webp_bomb);

    let bmp = encode(&DynamicImage::ImageRgb8(gradient(30, 20)), image::ImageFormat::Bmp);
    c.image("plain.bmp", "a BMP", ok.clone(), &bmp);
    let mut bmp_bomb = bmp.clone();
    bmp_bomb[18..22].copy_from_slice(&60000i32.to_le_bytes());
    bmp_bomb[22..26].copy_from_slice(&(-60000i32).to_le_bytes());
    c.image("bmp-declares-60000x60000.bmp", "a BMP header of 60000×60000 (top-down)", refused(TOO_MANY_PIXELS), &bmp_bomb);

    let svg = b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'><script>alert('x')</script><rect width='10' height='10'/></svg>";
    c.image("script.svg", "an SVG with a script", refused(NOT_AN_IMAGE), svg);
    c.image("photo.heic", "a HEIC header (iPhone photos; not supported)", refused(NOT_AN_IMAGE), &ftyp(b"heic"));
    c.image("photo.avif", "an AVIF header (not supported)", refused(NOT_AN_IMAGE), &ftyp(b"avif"));
    c.image("text-renamed.jpg", "a text file named .jpg", refused(NOT_AN_IMAGE), b"These are field notes, not a photo.\n");

    // Files a browser cannot hand to a page: the CLI must not hang or read without end.
    let huge = c.dir.join("zeros-1.2GB.jpg");
    std::fs::File::create(&huge).unwrap().set_len(1_200_000_000).unwrap(); // sparse: no disk used
    c.note("zeros-1.2GB.jpg", Kind::Image, "1.2 GB of zeros named .jpg (refused from its size, unread)", refused("larger than 100 MB"), true);
    #[cfg(unix)]
    {
        let link = c.dir.join("dev-zero.jpg");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        c.note("dev-zero.jpg", Kind::Image, "a link to /dev/zero named .jpg", refused("not a regular file"), true);
        let fifo = c.dir.join("fifo.jpg");
        let _ = std::fs::remove_file(&fifo);
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
        c.note("fifo.jpg", Kind::Image, "a FIFO named .jpg (opening it would block forever)", refused("not a regular file"), true);
    }
}

/// An ISO-BMFF `ftyp` box of the given brand and some bytes (what HEIC and AVIF start with).
fn ftyp(brand: &[u8; 4]) -> Vec<u8> {
    let mut out = 24u32.to_be_bytes().to_vec();
    out.extend_from_slice(b"ftyp");
    out.extend_from_slice(brand);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(b"mif1");
    out.extend_from_slice(brand);
    out.extend_from_slice(&[0u8; 64]);
    out
}

/// A two-frame APNG: the static image is the first frame; a second frame follows.
fn apng() -> Vec<u8> {
    let first = png(16, 16);
    let idat = {
        let at = first.windows(4).position(|m| m == b"IDAT").unwrap() - 4;
        let len = u32::from_be_bytes(first[at..at + 4].try_into().unwrap()) as usize;
        first[at + 8..at + 8 + len].to_vec()
    };
    let mut out = first[..8 + 25].to_vec(); // signature + IHDR
    let mut actl = 2u32.to_be_bytes().to_vec();
    actl.extend_from_slice(&0u32.to_be_bytes());
    out.extend(png_chunk(b"acTL", &actl));
    let fctl = |seq: u32| {
        let mut f = seq.to_be_bytes().to_vec();
        for v in [16u32, 16, 0, 0] {
            f.extend_from_slice(&v.to_be_bytes());
        }
        f.extend_from_slice(&[0, 1, 0, 10, 0, 0]);
        f
    };
    out.extend(png_chunk(b"fcTL", &fctl(0)));
    out.extend(png_chunk(b"IDAT", &idat));
    out.extend(png_chunk(b"fcTL", &fctl(1)));
    let mut fdat = 2u32.to_be_bytes().to_vec();
    fdat.extend_from_slice(&idat);
    out.extend(png_chunk(b"fdAT", &fdat));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

fn animated_gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut out);
        for shift in [0u8, 80, 160] {
            let frame = ImageBuffer::from_fn(20, 20, |x, y| Rgba([(x as u8 * 10).wrapping_add(shift), y as u8 * 10, shift, 255]));
            encoder.encode_frame(image::Frame::new(frame)).unwrap();
        }
    }
    out
}

// ---- weights ----

/// A safetensors file: its JSON header and its data.
struct Safetensors {
    header: serde_json::Map<String, Value>,
    data: Vec<u8>,
}

impl Safetensors {
    fn parse(bytes: &[u8]) -> Self {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        Self { header, data: bytes[8 + n..].to_vec() }
    }

    fn bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).unwrap();
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend(header);
        out.extend_from_slice(&self.data);
        out
    }

    fn offsets(&self, name: &str) -> (usize, usize) {
        let o = &self.header[name]["data_offsets"];
        (o[0].as_u64().unwrap() as usize, o[1].as_u64().unwrap() as usize)
    }
}

const TINY_CONFIG: &[u8] = include_bytes!("../data/tiny/config.json");
const PATCH: &str = "vision_model.embeddings.patch_embedding.weight";
const TOKENS: &str = "text_model.embeddings.token_embedding.weight";

fn weights(c: &mut Corpus, tiny: &[u8]) {
    // The tiny model's config sits next to the weights (as the CLI looks for it): its head
    // count cannot be read from shapes, so without it every file would fail on that first.
    std::fs::write(c.dir.join("config.json"), TINY_CONFIG).unwrap();
    let add = |c: &mut Corpus, file: &str, what: &str, message: &str, bytes: &[u8]| {
        c.add(file, Kind::Weights, what, refused(message), bytes);
    };
    add(c, "empty.safetensors", "0 bytes", "The file is empty", &[]);
    add(c, "truncated.safetensors", "the first half of a model", "is truncated", &tiny[..tiny.len() / 2]);
    let mut huge_header = (1u64 << 60).to_le_bytes().to_vec();
    huge_header.extend_from_slice(b"{\"a\":1}");
    add(c, "header-2-pow-60.safetensors", "a header length of 2^60", "header", &huge_header);
    add(c, "header-not-json.safetensors", "a header of random bytes", "header", &{
        let mut b = 64u64.to_le_bytes().to_vec();
        b.extend((0..64u8).map(|i| i.wrapping_mul(37) ^ 0xa5));
        b
    });

    let model = Safetensors::parse(tiny);
    let mut past_end = Safetensors::parse(tiny);
    let (start, _) = past_end.offsets(PATCH);
    past_end.header[PATCH]["data_offsets"] = json!([start, model.data.len() + 4096]);
    add(c, "offsets-past-end.safetensors", "a tensor whose data runs past the end of the file", "offset", &past_end.bytes());

    let mut overlapping = Safetensors::parse(tiny);
    let (start, end) = overlapping.offsets(TOKENS);
    let (other, _) = overlapping.offsets(PATCH);
    let _ = start;
    overlapping.header[TOKENS]["data_offsets"] = json!([other, other + (end - start)]);
    add(c, "offsets-overlapping.safetensors", "two tensors sharing the same bytes", "offset", &overlapping.bytes());

    let mut dtype = Safetensors::parse(tiny);
    dtype.header[PATCH]["dtype"] = json!("BOOL");
    add(c, "wrong-dtype.safetensors", "a weight stored as BOOL (its byte count no longer fits)", "header cannot be read", &dtype.bytes());

    let mut shape = Safetensors::parse(tiny);
    let dims: Vec<u64> = shape.header[PATCH]["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
    // Same number of values, another shape: [width, 3·p·p, 1, 1] instead of [width, 3, p, p].
    shape.header[PATCH]["shape"] = json!([dims[0], dims[1] * dims[2] * dims[3], 1, 1]);
    add(c, "wrong-shape.safetensors", "the patch embedding reshaped (same size)", PATCH, &shape.bytes());

    for (file, value, word) in [("nan.safetensors", f32::NAN, "NaN"), ("inf.safetensors", f32::INFINITY, "infinit")] {
        let mut bad = Safetensors::parse(tiny);
        let (start, _) = bad.offsets(PATCH);
        bad.data[start + 40..start + 44].copy_from_slice(&value.to_le_bytes());
        let _ = word;
        add(c, file, &format!("a patch embedding holding {value}"), PATCH, &bad.bytes());
    }
    let mut zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
    zip.extend_from_slice(b"archive/data.pkl");
    zip.extend_from_slice(&[0u8; 200]);
    // The CLI tries it as a PyTorch checkpoint (and says it cannot be read); the page, which
    // reads no PyTorch checkpoints, says what it is.
    add(c, "zip-renamed.safetensors", "a damaged zip archive (a PyTorch checkpoint) named .safetensors", "PyTorch", &zip);
}

// ---- label lists ----

fn labels(c: &mut Corpus) {
    let many: String = (0..5000).map(|i| format!("species number {i}\n")).collect();
    c.add("labels-5000.txt", Kind::Labels, "5,000 labels", Expect::Accepted, many.as_bytes());
    let long = format!("cat\n{}\n", "very ".repeat(20_000));
    c.add("labels-100kb-label.txt", Kind::Labels, "a label of 100 KB", refused("characters long"), long.as_bytes());
    c.add("labels-blank.txt", Kind::Labels, "only blank lines", refused("label list is empty"), b"\n  \n\t\n\n");
    c.add("labels-nul.txt", Kind::Labels, "NUL bytes inside labels", Expect::Accepted, b"cat\0tabby\ndog\0\n");
    c.add(
        "labels-html.txt",
        Kind::Labels,
        "HTML and script in labels (shown as text, never run)",
        Expect::Accepted,
        b"<img src=x onerror=alert(1)>\n<script>alert('x')</script>\ncat\n",
    );
    c.add("labels-crlf-bom.txt", Kind::Labels, "a byte order mark and Windows line ends", Expect::Accepted, "\u{feff}cat\r\ndog\r\n".as_bytes());
    c.add("labels-latin1.txt", Kind::Labels, "text that is not UTF-8 (Latin-1)", refused("not UTF-8"), b"caf\xe9\nch\xeane\n");
}

// ---- adapters and galleries ----

/// `n` unit vectors of `dim` values, deterministic.
fn unit_rows(n: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| {
            let row: Vec<f32> = (0..dim).map(|d| (((i * 31 + d * 17) % 97) as f32 - 48.0) / 48.0).collect();
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            row.iter().map(|x| x / norm).collect()
        })
        .collect()
}

fn adapters_and_galleries(c: &mut Corpus, model: &Model) {
    let dim = model.dim;
    let keys = unit_rows(4, dim);
    let adapter = |keys: &[Vec<f32>]| {
        json!({
            "format": 1, "model": model.id, "dim": dim, "labels": ["cat", "dog"], "templates": ["a photo of a {}."],
            "alpha": 1.0, "beta": 5.5, "keys": keys, "key_labels": [0, 1, 0, 1], "probe": null
        })
    };
    let write = |c: &mut Corpus, file: &str, kind: Kind, what: &str, expect: Expect, v: &Value| {
        c.add(file, kind, what, expect, &serde_json::to_vec(v).unwrap());
    };
    let a = Kind::Adapter;
    write(c, "adapter-good.json", a, "a good adapter (cat, dog)", Expect::Accepted, &adapter(&keys));
    write(c, "adapter-wrong-dim.json", a, "keys of the wrong dimension", refused("dimension"), &{
        let mut v = adapter(&unit_rows(4, dim + 3));
        v["dim"] = json!(dim + 3);
        v
    });
    write(c, "adapter-short-key.json", a, "one key shorter than the others", refused("adapter"), &adapter(&{
        let mut k = keys.clone();
        k[2].pop();
        k
    }));
    let mut nan = serde_json::to_string(&adapter(&keys)).unwrap();
    nan = nan.replacen("\"beta\":5.5", "\"beta\":1e39", 1);
    c.add("adapter-inf.json", a, "beta of 1e39 (infinite as f32)", refused("finite"), nan.as_bytes());
    write(c, "adapter-missing-keys.json", a, "no keys field", refused("keys"), &{
        let mut v = adapter(&keys);
        v.as_object_mut().unwrap().remove("keys");
        v
    });
    write(c, "adapter-number-labels.json", a, "labels that are numbers, not text", refused("string"), &{
        let mut v = adapter(&keys);
        v["labels"] = json!([1, 2]);
        v
    });
    write(c, "adapter-label-out-of-range.json", a, "a key labelled 7 of 2 labels", refused("label"), &{
        let mut v = adapter(&keys);
        v["key_labels"] = json!([0, 1, 7, 1]);
        v
    });
    // 40,000 keys of the wrong size: ~10 MB of JSON, refused without trouble.
    let huge = format!(
        "{{\"format\":1,\"model\":\"{}\",\"dim\":{dim},\"labels\":[\"cat\",\"dog\"],\"templates\":[],\"alpha\":1,\"beta\":5.5,\"keys\":[{}],\"key_labels\":[],\"probe\":null}}",
        model.id,
        vec![format!("[{}]", vec!["0.125"; 40].join(",")); 40_000].join(",")
    );
    c.add("adapter-huge-arrays.json", a, "40,000 keys that do not fit (10 MB)", refused("adapter"), huge.as_bytes());
    c.add("adapter-not-json.json", a, "not JSON", refused("adapter"), b"{\"format\": 1, \"keys\": [[0.1, ");

    let g = Kind::Gallery;
    let entries = |rows: &[Vec<f32>]| -> Value {
        rows.iter()
            .enumerate()
            .map(|(i, e)| json!({"name": format!("photo{i}.jpg"), "sha256": format!("{i:064x}"), "embedding": e}))
            .collect()
    };
    let gallery = |rows: &[Vec<f32>]| json!({"format": 1, "model": model.id, "dim": dim, "entries": entries(rows)});
    write(c, "gallery-good.json", g, "a good gallery of 3 photos", Expect::Accepted, &gallery(&unit_rows(3, dim)));
    write(c, "gallery-wrong-dim.json", g, "an embedding of the wrong size", refused("gallery"), &{
        let mut rows = unit_rows(3, dim);
        rows[1].push(0.5);
        gallery(&rows)
    });
    c.add("gallery-huge-value.json", g, "an embedding value of 1e39 (infinite as f32)", refused("finite"), {
        let mut rows = unit_rows(3, dim);
        rows[0][0] = 12345.0;
        serde_json::to_string(&gallery(&rows)).unwrap().replacen("12345.0", "1e39", 1)
    }.as_bytes());
    write(c, "gallery-missing-entries.json", g, "no entries field", refused("entries"), &json!({"format": 1, "model": model.id, "dim": dim}));
    write(c, "gallery-other-model.json", g, "made by another model", refused("model"), &{
        let mut v = gallery(&unit_rows(3, dim));
        v["model"] = json!("some other model 0123");
        v
    });
}

/// Writes `bytes` to `path` (for callers outside this module).
pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::File::create(path).unwrap().write_all(bytes).unwrap();
}
