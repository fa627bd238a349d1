#include "worker/data/image.h"

#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

namespace atp::data {
namespace {

// libjpeg and libpng report fatal errors through longjmp. The decoding frames hold no objects
// with destructors (the output lives in the caller's frame), so the jump never skips one, and
// locals assigned after setjmp are volatile so their values are defined after the jump.
struct ErrorSink {
  char message[JMSG_LENGTH_MAX + 256] = {0};
  bool truncated = false;
};

// ---------------------------------------------------------------- JPEG
struct JpegErrorManager {
  jpeg_error_mgr pub;
  jmp_buf jump;
  ErrorSink* sink;
};

void JpegErrorExit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->sink->message);
  longjmp(err->jump, 1);
}

// PIL fails on a file that ends before the image does ("image file is truncated") and
// ignores libjpeg's other warnings (e.g. extraneous bytes before a marker); so do we.
void JpegEmitMessage(j_common_ptr cinfo, int msg_level) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  if (msg_level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) err->sink->truncated = true;
}

// PIL's CMYK -> RGB conversion (Convert.c cmyk2rgb) after undoing Adobe's inverted storage
// (PIL decodes every CMYK JPEG with rawmode "CMYK;I").
inline uint8_t CmykChannel(uint8_t ink, uint8_t nk) {
  int tmp = ink * nk + 128;
  int mul = ((tmp >> 8) + tmp) >> 8;
  int v = nk - mul;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

bool DecodeJpeg(const uint8_t* data, size_t size, Image* out, ErrorSink* sink) {
  jpeg_decompress_struct cinfo;
  JpegErrorManager jerr;
  cinfo.err = jpeg_std_error(&jerr.pub);
  jerr.pub.error_exit = JpegErrorExit;
  jerr.pub.emit_message = JpegEmitMessage;
  jerr.sink = sink;
  JSAMPLE* volatile row = nullptr;
  if (setjmp(jerr.jump)) {
    jpeg_destroy_decompress(&cinfo);
    free(row);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  // Defaults equal PIL's: ISLOW DCT, fancy upsampling, no scaling.
  switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo.out_color_space = JCS_GRAYSCALE; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo.out_color_space = JCS_CMYK; break;
    default: cinfo.out_color_space = JCS_RGB; break;
  }
  if (static_cast<int64_t>(cinfo.image_width) * cinfo.image_height > kMaxImagePixels) {
    snprintf(sink->message, sizeof(sink->message),
             "image of %ux%u pixels exceeds the limit of %lld pixels", cinfo.image_width,
             cinfo.image_height, static_cast<long long>(kMaxImagePixels));
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_start_decompress(&cinfo);
  const int w = static_cast<int>(cinfo.output_width);
  const int h = static_cast<int>(cinfo.output_height);
  const int comps = cinfo.output_components;
  out->width = w;
  out->height = h;
  out->rgb.resize(static_cast<size_t>(w) * h * 3);
  if (comps != 3) row = static_cast<JSAMPLE*>(malloc(static_cast<size_t>(w) * comps));
  JSAMPLE* const line = row;
  while (cinfo.output_scanline < cinfo.output_height) {
    uint8_t* dst = out->rgb.data() + static_cast<size_t>(cinfo.output_scanline) * w * 3;
    JSAMPROW rows[1] = {comps == 3 ? dst : line};
    jpeg_read_scanlines(&cinfo, rows, 1);
    if (comps == 1) {
      for (int x = 0; x < w; ++x) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = line[x];
    } else if (comps == 4) {
      for (int x = 0; x < w; ++x) {
        const uint8_t* p = line + 4 * x;
        // Stored values are inverted (Adobe): ink = 255 - stored, so 255 - black = stored k.
        const uint8_t not_k = p[3];
        dst[3 * x + 0] = CmykChannel(static_cast<uint8_t>(255 - p[0]), not_k);
        dst[3 * x + 1] = CmykChannel(static_cast<uint8_t>(255 - p[1]), not_k);
        dst[3 * x + 2] = CmykChannel(static_cast<uint8_t>(255 - p[2]), not_k);
      }
    }
  }
  const bool truncated = sink->truncated;
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  free(row);
  if (truncated) {
    snprintf(sink->message, sizeof(sink->message),
             "the JPEG data ends before the image does (truncated file)");
    return false;
  }
  return true;
}

// ---------------------------------------------------------------- PNG
struct PngReader {
  const uint8_t* data;
  size_t size;
  size_t pos;
  ErrorSink* sink;
};

void PngRead(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (r->size - r->pos < n) {
    r->sink->truncated = true;
    png_error(png, "the PNG data ends before the image does (truncated file)");
  }
  memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

void PngError(png_structp png, png_const_charp msg) {
  auto* sink = static_cast<ErrorSink*>(png_get_error_ptr(png));
  if (sink->message[0] == 0) snprintf(sink->message, sizeof(sink->message), "%s", msg);
  png_longjmp(png, 1);
}

void PngWarning(png_structp, png_const_charp) {}

bool DecodePng(const uint8_t* data, size_t size, Image* out, ErrorSink* sink) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, sink, PngError, PngWarning);
  if (png == nullptr) {
    snprintf(sink->message, sizeof(sink->message), "libpng could not allocate a reader");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  PngReader reader{data, size, 0, sink};
  png_bytep* volatile rows = nullptr;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    free(rows);
    return false;
  }
  if (info == nullptr) png_error(png, "libpng could not allocate an info struct");
  png_set_read_fn(png, &reader, PngRead);
  png_set_user_limits(png, 1000000, 1000000);
  png_read_info(png, info);
  const png_uint_32 w = png_get_image_width(png, info);
  const png_uint_32 h = png_get_image_height(png, info);
  if (static_cast<int64_t>(w) * h > kMaxImagePixels) {
    png_error(png, "image exceeds the pixel limit of 178956970 pixels");
  }
  // To 8-bit RGB the way PIL's convert("RGB") does: palettes and low bit depths expanded,
  // 16-bit samples keep their high byte (PIL's "RGB;16B" unpacker), gray replicated,
  // alpha and tRNS transparency dropped (not composited), gamma chunks ignored.
  png_set_expand(png);
  png_set_strip_16(png);
  png_set_strip_alpha(png);
  png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8) {
    png_error(png, "unsupported PNG pixel layout after conversion to 8-bit RGB");
  }
  out->width = static_cast<int>(w);
  out->height = static_cast<int>(h);
  out->rgb.resize(static_cast<size_t>(w) * h * 3);
  rows = static_cast<png_bytep*>(malloc(sizeof(png_bytep) * h));
  for (png_uint_32 y = 0; y < h; ++y) rows[y] = out->rgb.data() + static_cast<size_t>(y) * w * 3;
  png_read_image(png, rows);
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  free(rows);
  return true;
}

}  // namespace

Result<Image> DecodeImageMemory(const uint8_t* data, size_t size, const std::string& name) {
  if (size == 0) return InvalidArgument(name + ": empty file, not an image");
  Image image;
  ErrorSink sink;
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  bool ok;
  const char* format;
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
    format = "JPEG";
    ok = DecodeJpeg(data, size, &image, &sink);
  } else if (size >= 8 && memcmp(data, kPng, 8) == 0) {
    format = "PNG";
    ok = DecodePng(data, size, &image, &sink);
  } else {
    return InvalidArgument(name +
                           ": not a JPEG or PNG file (unrecognised first bytes); atp decodes "
                           "JPEG and PNG only: convert the image or remove it from the split");
  }
  if (!ok) {
    return InvalidArgument(name + ": corrupt " + format + " image: " + sink.message);
  }
  if (image.width <= 0 || image.height <= 0) {
    return InvalidArgument(name + ": " + format + " image has no pixels");
  }
  return image;
}

Result<Image> DecodeImageFile(const std::string& path) {
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) return NotFound(path + ": cannot open image file (" + std::strerror(errno) + ")");
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) bytes.insert(bytes.end(), chunk, chunk + n);
  const bool failed = ferror(f) != 0;
  fclose(f);
  if (failed) return IoError(path + ": read error (" + std::strerror(errno) + ")");
  return DecodeImageMemory(bytes.data(), bytes.size(), path);
}

Status WritePngFile(const std::string& path, int width, int height, int channels,
                    const uint8_t* pixels) {
  if (channels != 1 && channels != 3) return InvalidArgument("WritePngFile: channels must be 1 or 3");
  png_image img;
  memset(&img, 0, sizeof(img));
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(width);
  img.height = static_cast<png_uint_32>(height);
  img.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&img, path.c_str(), 0, pixels, 0, nullptr)) {
    std::string msg = img.message;
    png_image_free(&img);
    return IoError(path + ": cannot write PNG: " + msg);
  }
  return Status::Ok();
}

namespace {
bool EncodeJpeg(FILE* f, const Image* image, int quality, ErrorSink* sink) {
  jpeg_compress_struct cinfo;
  JpegErrorManager jerr;
  cinfo.err = jpeg_std_error(&jerr.pub);
  jerr.pub.error_exit = JpegErrorExit;
  jerr.sink = sink;
  if (setjmp(jerr.jump)) {
    jpeg_destroy_compress(&cinfo);
    return false;
  }
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, f);
  cinfo.image_width = static_cast<JDIMENSION>(image->width);
  cinfo.image_height = static_cast<JDIMENSION>(image->height);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPLE*>(image->rgb.data() +
                                        static_cast<size_t>(cinfo.next_scanline) * image->width * 3);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return true;
}
}  // namespace

Status WriteJpegFile(const std::string& path, const Image& image, int quality) {
  if (image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3 || image.width <= 0) {
    return InvalidArgument(path + ": WriteJpegFile needs a non-empty RGB image");
  }
  FILE* f = fopen(path.c_str(), "wb");
  if (f == nullptr) return IoError(path + ": cannot create (" + std::strerror(errno) + ")");
  ErrorSink sink;
  const bool ok = EncodeJpeg(f, &image, quality, &sink);
  const bool closed = fclose(f) == 0;
  if (!ok) return Internal(path + ": libjpeg: " + sink.message);
  if (!closed) return IoError(path + ": write error");
  return Status::Ok();
}

}  // namespace atp::data
