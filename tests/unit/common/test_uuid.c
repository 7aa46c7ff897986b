#include <criterion/criterion.h>
#include <string.h>

#include "scale/uuid.h"

Test(uuid, v4_has_version_and_variant) {
  char a[SC_UUID_STR_LEN + 1], b[SC_UUID_STR_LEN + 1];
  cr_assert_eq(sc_uuid_v4(a), 0);
  cr_assert_eq(sc_uuid_v4(b), 0);
  cr_assert(sc_uuid_valid(a), "%s", a);
  cr_assert_eq(a[14], '4');
  cr_assert(strchr("89ab", a[19]) != NULL, "%s", a);
  cr_assert_str_neq(a, b);
}

Test(uuid, validation) {
  cr_assert(sc_uuid_valid("6a319805-9ec5-4bcf-bd35-9aa98a2ab216"));
  cr_assert(sc_uuid_valid("6A319805-9EC5-4BCF-BD35-9AA98A2AB216"));
  cr_assert_not(sc_uuid_valid(NULL));
  cr_assert_not(sc_uuid_valid(""));
  cr_assert_not(sc_uuid_valid("6a319805-9ec5-4bcf-bd35-9aa98a2ab21"));
  cr_assert_not(sc_uuid_valid("6a319805-9ec5-4bcf-bd35-9aa98a2ab2167"));
  cr_assert_not(sc_uuid_valid("6a319805x9ec5-4bcf-bd35-9aa98a2ab216"));
  cr_assert_not(sc_uuid_valid("6a319805-9ec5-4bcf-bd35-9aa98a2ab21g"));
}
