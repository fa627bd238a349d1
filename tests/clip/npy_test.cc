#include "worker/clip/npy.h"

#include <gtest/gtest.h>

#include "tests/clip/clip_test_util.h"
#include "tests/support/status_matchers.h"

namespace atp::clip {
namespace {

using testing::TempDir;

std::string Header(const std::string& dict) {
  std::string h = dict;
  while ((10 + h.size() + 1) % 64 != 0) h.push_back(' ');
  h.push_back('\n');
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(h.size() & 0xFF));
  out.push_back(static_cast<char>(h.size() >> 8));
  return out + h;
}

TEST(NpyTest, Float32RoundTrip) {
  TempDir dir;
  const std::vector<float> v = {1.5f, -2.0f, 0.0f, 3.25f, 1e-8f, -7.0f};
  ASSERT_OK(WriteNpyFloat32(dir.File("a.npy"), {2, 3}, v.data()));
  auto a = ReadNpy(dir.File("a.npy"));
  ASSERT_OK(a);
  EXPECT_EQ(a->dtype, NpyDtype::kFloat32);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->ToFloat32(), v);
  ASSERT_OK(WriteNpyFloat32(dir.File("b.npy"), {4}, v.data()));
  EXPECT_EQ(ReadNpy(dir.File("b.npy"))->shape, (std::vector<int64_t>{4}));
}

TEST(NpyTest, Float16AndUint8AreConverted) {
  // 1.0, -2.0, 65504 (largest half), 2^-24 (smallest subnormal)
  std::string f16 = Header("{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }") +
                    std::string("\x00\x3C\x00\xC0\xFF\x7B\x01\x00", 8);
  auto a = ParseNpy(f16, "f16");
  ASSERT_OK(a);
  EXPECT_EQ(a->ToFloat32(), (std::vector<float>{1.0f, -2.0f, 65504.0f, 5.9604645e-08f}));
  std::string u8 = Header("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 2), }") + "\x05\xFF";
  auto b = ParseNpy(u8, "u8");
  ASSERT_OK(b);
  EXPECT_EQ(b->ToFloat32(), (std::vector<float>{5.0f, 255.0f}));
}

TEST(NpyTest, UnsupportedOrBrokenFilesAreNamedErrors) {
  auto err = [](const std::string& contents) { return ParseNpy(contents, "x.npy").status().message(); };
  EXPECT_NE(err("hello").find("x.npy: not a .npy file"), std::string::npos);
  EXPECT_NE(err(Header("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }") + "abcd").find("'>f4'"),
            std::string::npos);
  EXPECT_NE(err(Header("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }") + "abcdefgh").find("'<f8'"),
            std::string::npos);
  EXPECT_NE(err(Header("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }") + "abcd").find("Fortran"),
            std::string::npos);
  EXPECT_NE(err(Header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }") + "abcd").find("truncated"),
            std::string::npos);
  EXPECT_EQ(ReadNpy("/nonexistent.npy").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace atp::clip
