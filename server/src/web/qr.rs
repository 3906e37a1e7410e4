//! QR codes for asset labels, rendered on the server as inline SVG.

use maud::{Markup, PreEscaped};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// `text` as an inline SVG QR code (error correction M: a label may get scratched).
/// Text too long for a QR code gives an empty mark rather than a broken page.
pub(crate) fn svg(text: &str) -> Markup {
    let Ok(code) = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M) else {
        return PreEscaped(String::new());
    };
    let image = code
        .render::<svg::Color<'_>>()
        .quiet_zone(true)
        .min_dimensions(120, 120)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    // Inline SVG needs no XML declaration; the rest is the renderer's own markup.
    let body = image
        .split_once("?>")
        .map_or(image.as_str(), |(_, rest)| rest)
        .replacen("<svg ", "<svg role=\"img\" aria-hidden=\"true\" ", 1);
    PreEscaped(body)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_label_url_becomes_an_inline_svg() {
        let markup = super::svg("https://mdm.example/d/GYM1-0042").into_string();
        assert!(markup.starts_with("<svg "), "{markup}");
        assert!(markup.contains("<path"), "{markup}");
        assert!(!markup.contains("<?xml"));
    }
}
