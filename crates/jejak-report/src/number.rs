//! Numbers as people read them.

use jejak_domain::Lang;

/// A number with `places` decimals as people read it: `1.234,5` in Indonesian (id-ID),
/// `1,234.5` in English. Negative numbers get a `-`; a value that rounds to zero never
/// shows `-0`. Halves round away from zero (`2,25` → `2,3`), as people round by hand.
pub fn format_number(value: f64, places: u8, lang: Lang) -> String {
    if !value.is_finite() {
        return String::from("–");
    }
    let (thousands, point) = match lang {
        Lang::Id => ('.', ','),
        Lang::En => (',', '.'),
    };
    let scale = 10f64.powi(i32::from(places));
    let rounded = (value.abs() * scale).round() / scale;
    let rounded = if rounded.is_finite() {
        rounded
    } else {
        value.abs()
    };
    let text = format!("{:.*}", usize::from(places), rounded);
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let mut out = String::with_capacity(text.len() + whole.len() / 3 + 1);
    if value < 0.0 && text.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        out.push('-');
    }
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(thousands);
        }
        out.push(digit);
    }
    if !fraction.is_empty() {
        out.push(point);
        out.push_str(fraction);
    }
    out
}
