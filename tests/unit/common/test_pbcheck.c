#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "scale/accounts/v1/accounts.pb-c.h"
#include "scale/common/v1/ping.pb-c.h"
#include "scale/pbcheck.h"

Test(pbcheck, utf8_validation_is_strict) {
  struct {
    const char *s;
    size_t n;
    bool ok;
  } cases[] = {
      {"", 0, true},
      {"plain ascii", 11, true},
      {"caf\xc3\xa9", 5, true},
      {"\xe2\x82\xac", 3, true},     /* euro sign */
      {"\xf0\x9f\x92\xb0", 4, true}, /* money bag */
      {"\xff\xfe", 2, false},
      {"\xc0\xaf", 2, false},         /* overlong '/' */
      {"\xe0\x80\xaf", 3, false},     /* overlong */
      {"\xed\xa0\x80", 3, false},     /* surrogate */
      {"\xf4\x90\x80\x80", 4, false}, /* past U+10FFFF */
      {"\xc3", 1, false},             /* truncated */
      {"\x80", 1, false},             /* lone continuation */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    cr_assert_eq(sc_utf8_valid(cases[i].s, cases[i].n), cases[i].ok, "case %zu", i);
  }
}

Test(pbcheck, finds_the_bad_string_and_names_its_path) {
  sc_arena_t *a = sc_arena_new(0);
  Scale__Common__V1__PingRequest ping = SCALE__COMMON__V1__PING_REQUEST__INIT;
  const char *field = NULL;
  ping.message = "fine";
  cr_assert(sc_pb_strings_valid(&ping.base, a, &field));
  ping.message = "bad \xff";
  cr_assert_not(sc_pb_strings_valid(&ping.base, a, &field));
  cr_assert_str_eq(field, "message");

  /* Nested and repeated: Profile.accounts[1].<string field>. */
  Scale__Accounts__V1__Profile prof = SCALE__ACCOUNTS__V1__PROFILE__INIT;
  Scale__Accounts__V1__AccountSummary s0 = SCALE__ACCOUNTS__V1__ACCOUNT_SUMMARY__INIT;
  Scale__Accounts__V1__AccountSummary s1 = SCALE__ACCOUNTS__V1__ACCOUNT_SUMMARY__INIT;
  Scale__Accounts__V1__AccountSummary *list[] = {&s0, &s1};
  prof.n_accounts = 2;
  prof.accounts = list;
  cr_assert(sc_pb_strings_valid(&prof.base, a, &field));
  const ProtobufCFieldDescriptor *f = NULL;
  for (unsigned i = 0; i < s1.base.descriptor->n_fields; i++) {
    if (s1.base.descriptor->fields[i].type == PROTOBUF_C_TYPE_STRING) {
      f = &s1.base.descriptor->fields[i];
      break;
    }
  }
  cr_assert_not_null(f, "AccountSummary has a string field");
  *(char **)((char *)&s1 + f->offset) = "\xc3";
  cr_assert_not(sc_pb_strings_valid(&prof.base, a, &field));
  char want[128];
  snprintf(want, sizeof(want), "accounts[1].%s", f->name);
  cr_assert_str_eq(field, want);
  sc_arena_free(a);
}
